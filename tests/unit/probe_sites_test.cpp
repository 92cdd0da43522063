// Every USDT site in the built library is a 5-byte nop (0f 1f 44 00 00) described by a valid
// stapsdt note with a semaphore. Reads the ELF file itself; needs no privileges.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

struct Probe {
  std::string provider, name, args;
  std::uint64_t pc, base, semaphore;
};

std::vector<char> read_file(const char* path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

TEST(ProbeSitesTest, EverySiteIsANop5WithASemaphore) {
  const std::vector<char> file = read_file(MPT_LIB_PATH);
  ASSERT_GT(file.size(), sizeof(Elf64_Ehdr)) << MPT_LIB_PATH;
  Elf64_Ehdr eh;
  std::memcpy(&eh, file.data(), sizeof eh);
  ASSERT_EQ(std::memcmp(eh.e_ident, ELFMAG, SELFMAG), 0);
  ASSERT_EQ(eh.e_ident[EI_CLASS], ELFCLASS64);
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  std::memcpy(sh.data(), file.data() + eh.e_shoff, sizeof(Elf64_Shdr) * eh.e_shnum);
  const char* shstr = file.data() + sh[eh.e_shstrndx].sh_offset;
  const Elf64_Shdr* notes = nullptr;
  const Elf64_Shdr* base = nullptr;
  for (const auto& s : sh) {
    const std::string n = shstr + s.sh_name;
    if (n == ".note.stapsdt") notes = &s;
    if (n == ".stapsdt.base") base = &s;
  }
  ASSERT_NE(notes, nullptr) << "no .note.stapsdt section";
  ASSERT_NE(base, nullptr) << "no .stapsdt.base section";

  std::vector<Probe> probes;
  for (std::size_t off = notes->sh_offset; off < notes->sh_offset + notes->sh_size;) {
    Elf64_Nhdr nh;
    std::memcpy(&nh, file.data() + off, sizeof nh);
    const char* owner = file.data() + off + sizeof nh;
    const char* desc = owner + ((nh.n_namesz + 3) & ~3u);
    EXPECT_EQ(nh.n_type, 3u);
    EXPECT_STREQ(owner, "stapsdt");
    Probe p;
    std::memcpy(&p.pc, desc, 8);
    std::memcpy(&p.base, desc + 8, 8);
    std::memcpy(&p.semaphore, desc + 16, 8);
    const char* s = desc + 24;
    p.provider = s;
    s += p.provider.size() + 1;
    p.name = s;
    s += p.name.size() + 1;
    p.args = s;
    probes.push_back(p);
    off += sizeof nh + ((nh.n_namesz + 3) & ~3u) + ((nh.n_descsz + 3) & ~3u);
  }

  int emits = 0, fuels = 0;
  for (const auto& p : probes) {
    SCOPED_TRACE(p.provider + ":" + p.name + " at 0x" + std::to_string(p.pc));
    EXPECT_EQ(p.provider, "mpthrottle");
    emits += p.name == "emit";
    fuels += p.name == "fuel";
    EXPECT_EQ(p.base, base->sh_addr);
    EXPECT_NE(p.semaphore, 0u);
    EXPECT_NE(p.args.find("8@%"), std::string::npos) << p.args;
    // The site's bytes, found through the executable section that holds its address.
    bool found = false;
    for (const auto& s : sh) {
      if (!(s.sh_flags & SHF_EXECINSTR) || p.pc < s.sh_addr || p.pc + 5 > s.sh_addr + s.sh_size)
        continue;
      const auto* bytes =
          reinterpret_cast<const unsigned char*>(file.data() + s.sh_offset + (p.pc - s.sh_addr));
      const unsigned char nop5[] = {0x0f, 0x1f, 0x44, 0x00, 0x00};
      EXPECT_EQ(std::memcmp(bytes, nop5, 5), 0)
          << "bytes " << std::hex << int(bytes[0]) << " " << int(bytes[1]) << " " << int(bytes[2])
          << " " << int(bytes[3]) << " " << int(bytes[4]);
      found = true;
    }
    EXPECT_TRUE(found) << "address outside every executable section";
  }
  EXPECT_GE(emits, 1);
  EXPECT_GE(fuels, 1);
}

}  // namespace
