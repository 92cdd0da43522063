#include "mpt/shared_dict.hpp"

#include <pthread.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>

#include "futex.hpp"  // kForever
#include "robust_mutex.hpp"
#include "shared_dict_layout.hpp"

namespace mpt {

namespace {

using detail::DictSlotHead;

constexpr std::size_t kMaxCapacity = 1u << 22;
constexpr std::size_t kMaxKeyBytes = 64u << 10;
constexpr std::size_t kMaxValueBytes = 16u << 20;
constexpr std::uint32_t kEmpty = 0;
constexpr std::uint32_t kDeleted = 1;
constexpr std::size_t kNone = ~std::size_t{0};

constexpr std::size_t round_up(std::size_t n, std::size_t a) {
  return (n + a - 1) / a * a;
}

constexpr std::size_t kSlotsOffset = round_up(Segment::kBodyOffset + sizeof(ByteDict::Shared), 64);

}  // namespace

struct ByteDict::Geometry {
  std::size_t capacity;
  std::size_t max_key_bytes;
  std::size_t max_value_bytes;
  std::size_t slot_bytes;
  std::size_t buckets;
  std::size_t index_offset;
  std::size_t free_offset;
  std::size_t total_bytes;
};

namespace {

using Geometry = ByteDict::Geometry;

std::string range_error(const std::string& what, const char* field, std::size_t v, std::size_t lo,
                        std::size_t hi) {
  return what + ": " + field + " " + std::to_string(v) + " is outside " + std::to_string(lo) +
         ".." + std::to_string(hi);
}

Geometry geometry(const DictOptions& o, const std::string& what) {
  if (o.capacity < 1 || o.capacity > kMaxCapacity)
    throw InvalidArgument(range_error(what, "capacity", o.capacity, 1, kMaxCapacity) + " entries");
  if (o.max_key_bytes < 1 || o.max_key_bytes > kMaxKeyBytes)
    throw InvalidArgument(range_error(what, "max_key_bytes", o.max_key_bytes, 1, kMaxKeyBytes));
  if (o.max_value_bytes > kMaxValueBytes)
    throw InvalidArgument(
        range_error(what, "max_value_bytes", o.max_value_bytes, 0, kMaxValueBytes));
  Geometry g{};
  g.capacity = o.capacity;
  g.max_key_bytes = o.max_key_bytes;
  g.max_value_bytes = o.max_value_bytes;
  g.slot_bytes = round_up(sizeof(DictSlotHead) + o.max_key_bytes + o.max_value_bytes, 8);
  g.buckets = std::bit_ceil(2 * o.capacity);
  const std::size_t slots = o.capacity + 1;
  // Sizes here are below 2^47 (capacity < 2^23, slot_bytes < 2^25): no overflow.
  g.index_offset = round_up(kSlotsOffset + slots * g.slot_bytes, 64);
  g.free_offset = round_up(g.index_offset + g.buckets * 4, 64);
  g.total_bytes = round_up(g.free_offset + slots * 4, 64);
  if (g.total_bytes > kMaxSegmentBytes)
    throw InvalidArgument(what + ": capacity " + std::to_string(o.capacity) + " x " +
                          std::to_string(g.slot_bytes) + "-byte slots exceeds the " +
                          std::to_string(kMaxSegmentBytes) + "-byte segment limit");
  return g;
}

// FNV-1a, then a final mix so that the low bits (the bucket) depend on every byte.
std::uint64_t hash_key(ByteView key) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::byte b : key)
    h = (h ^ std::to_integer<std::uint64_t>(b)) * 0x100000001b3ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

// The dict's memory as this process maps it, with the geometry its handle read once; every member
// function runs with the mutex held.
struct Table {
  ByteDict::Shared* s;
  std::byte* base;
  std::size_t capacity;
  std::size_t max_key_bytes;
  std::size_t max_value_bytes;
  std::size_t slot_bytes;
  std::size_t buckets;
  std::size_t index_offset;
  std::size_t free_offset;

  std::size_t slots() const noexcept { return capacity + 1; }
  DictSlotHead* head(std::size_t n) const noexcept {
    return reinterpret_cast<DictSlotHead*>(base + kSlotsOffset + n * slot_bytes);
  }
  std::byte* key_of(std::size_t n) const noexcept {
    return reinterpret_cast<std::byte*>(head(n)) + sizeof(DictSlotHead);
  }
  std::byte* value_of(std::size_t n) const noexcept { return key_of(n) + max_key_bytes; }
  // The lengths bounded by the handle's own limits: a scribbled length cannot make a read leave
  // the slot (the entry then reads cut short, never outside the segment).
  ByteView key_view(std::size_t n) const noexcept {
    return {key_of(n), std::min<std::size_t>(head(n)->key_len, max_key_bytes)};
  }
  ByteView value_view(std::size_t n) const noexcept {
    return {value_of(n), std::min<std::size_t>(head(n)->value_len, max_value_bytes)};
  }
  std::uint32_t* index() const noexcept {
    return reinterpret_cast<std::uint32_t*>(base + index_offset);
  }
  std::uint32_t* free_stack() const noexcept {
    return reinterpret_cast<std::uint32_t*>(base + free_offset);
  }

  struct Probe {
    std::size_t found = kNone;   // the index word of the key's entry
    std::size_t insert = kNone;  // where a new entry for the key would go
  };
  Probe probe(ByteView key, std::uint64_t h) const noexcept;
  std::size_t slot_at(std::size_t bucket) const noexcept { return index()[bucket] - 2; }

  std::size_t pop_free();
  void push_free(std::size_t n) noexcept {
    if (s->free_top < slots()) free_stack()[s->free_top++] = static_cast<std::uint32_t>(n);
  }
  // Writes key and value into a free slot and publishes it; returns the slot.
  std::size_t publish(ByteView key, std::uint64_t h, ByteView value);
  void assign(ByteView key, std::uint64_t h, ByteView value, const Probe& p);
  void remove(const Probe& p) noexcept;
  void rebuild() noexcept;
  void maybe_compact() noexcept;
};

Table::Probe Table::probe(ByteView key, std::uint64_t h) const noexcept {
  Probe p;
  const std::uint32_t* ix = index();
  const std::size_t mask = buckets - 1;
  for (std::size_t i = 0, b = h & mask; i < buckets; ++i, b = (b + 1) & mask) {
    const std::uint32_t w = ix[b];
    if (w == kEmpty) {
      if (p.insert == kNone) p.insert = b;
      return p;
    }
    if (w == kDeleted || w - 2 >= slots()) {  // (the latter only if scribbled on)
      if (p.insert == kNone) p.insert = b;
      continue;
    }
    const DictSlotHead* sh = head(w - 2);
    if (sh->hash == h && sh->key_len == key.size() &&
        (key.empty() || std::memcmp(key_of(w - 2), key.data(), key.size()) == 0)) {
      p.found = b;
      return p;
    }
  }
  return p;
}

std::size_t Table::pop_free() {
  // There are capacity + 1 slots and at most capacity entries, so a slot is always free here;
  // an empty stack means the segment was scribbled on.
  if (s->free_top == 0 || s->free_top > slots())
    throw IncompatibleSegment("dict: no free slot (corrupt segment)");
  const std::size_t n = free_stack()[s->free_top - 1];
  if (n >= slots()) throw IncompatibleSegment("dict: a free slot out of range (corrupt segment)");
  --s->free_top;
  return n;
}

std::size_t Table::publish(ByteView key, std::uint64_t h, ByteView value) {
  const std::size_t n = pop_free();
  DictSlotHead* sh = head(n);
  sh->hash = h;
  sh->key_len = static_cast<std::uint32_t>(key.size());
  sh->value_len = static_cast<std::uint32_t>(value.size());
  if (!key.empty()) std::memcpy(key_of(n), key.data(), key.size());
  if (!value.empty()) std::memcpy(value_of(n), value.data(), value.size());
  s->generation += 1;
  sh->stamp.store(s->generation, std::memory_order_release);  // the commit
  return n;
}

// A new value for the key: published first, then the index points at it, then the old slot (if
// any) is freed. Killed between the commit and the free, two slots hold the key; rebuild() keeps
// the newer.
void Table::assign(ByteView key, std::uint64_t h, ByteView value, const Probe& p) {
  const std::size_t n = publish(key, h, value);
  if (p.found != kNone) {
    const std::size_t old = slot_at(p.found);
    index()[p.found] = static_cast<std::uint32_t>(n + 2);
    head(old)->stamp.store(0, std::memory_order_release);
    push_free(old);
    return;
  }
  if (index()[p.insert] == kDeleted) --s->deleted;
  index()[p.insert] = static_cast<std::uint32_t>(n + 2);
  ++s->live;
  maybe_compact();
}

void Table::remove(const Probe& p) noexcept {
  const std::size_t n = slot_at(p.found);
  head(n)->stamp.store(0, std::memory_order_release);  // the commit
  index()[p.found] = kDeleted;
  push_free(n);
  --s->live;
  ++s->deleted;
  maybe_compact();
}

// Deleted marks make probes long; past three quarters of the index in use, start it afresh.
void Table::maybe_compact() noexcept {
  if ((s->live + s->deleted) * 4 > buckets * 3) rebuild();
}

// Everything but the slots from the slots: the index, the free stack, the counts. A key held by
// two slots (a writer killed between publishing a value and freeing the old one) keeps the one
// with the higher stamp. Safe to run again at any point if it is itself killed.
void Table::rebuild() noexcept {
  std::fill_n(index(), buckets, kEmpty);
  s->live = 0;
  s->deleted = 0;
  std::uint64_t newest = s->generation;
  for (std::size_t n = 0; n < slots(); ++n) {
    DictSlotHead* sh = head(n);
    const std::uint64_t stamp = sh->stamp.load(std::memory_order_acquire);
    if (stamp == 0) continue;
    if (sh->key_len > max_key_bytes || sh->value_len > max_value_bytes) {
      sh->stamp.store(0, std::memory_order_release);  // cannot happen short of a scribbler
      continue;
    }
    newest = std::max(newest, stamp);
    const Probe p = probe(key_view(n), sh->hash);
    if (p.found == kNone) {
      index()[p.insert] = static_cast<std::uint32_t>(n + 2);
      ++s->live;
      continue;
    }
    const std::size_t other = slot_at(p.found);
    const bool keep_new = stamp > head(other)->stamp.load(std::memory_order_relaxed);
    head(keep_new ? other : n)->stamp.store(0, std::memory_order_release);
    if (keep_new) index()[p.found] = static_cast<std::uint32_t>(n + 2);
  }
  s->generation = newest;
  s->free_top = 0;
  for (std::size_t n = slots(); n-- > 0;)
    if (head(n)->stamp.load(std::memory_order_relaxed) == 0) push_free(n);
}

Segment::Init init_dict(const Geometry& g) {
  return [g](void* data, std::size_t) {
    auto* s = new (static_cast<char*>(data) + Segment::kBodyOffset) ByteDict::Shared{};
    if (int r = detail::robust_mutex_init(&s->mutex); r != 0)
      throw SystemError("dict: pthread_mutex_init failed", r);
    s->capacity = g.capacity;
    s->max_key_bytes = g.max_key_bytes;
    s->max_value_bytes = g.max_value_bytes;
    s->slot_bytes = g.slot_bytes;
    s->buckets = g.buckets;
    Table t{s,
            static_cast<std::byte*>(data),
            g.capacity,
            g.max_key_bytes,
            g.max_value_bytes,
            g.slot_bytes,
            g.buckets,
            g.index_offset,
            g.free_offset};
    for (std::size_t n = t.slots(); n-- > 0;)
      t.push_free(n);
    s->magic = detail::kDictMagic;
  };
}

}  // namespace

// Holds the dict's robust mutex for a scope; rebuilds the dict when the previous owner died.
class ByteDict::Held {
 public:
  explicit Held(const ByteDict& d)
      : t{d.s_,
          static_cast<std::byte*>(d.segment_->data()),
          d.capacity_,
          d.max_key_bytes_,
          d.max_value_bytes_,
          d.slot_bytes_,
          d.buckets_,
          d.index_offset_,
          d.free_offset_} {
    if (detail::robust_mutex_lock(&t.s->mutex, detail::kForever, d.what_.c_str()) ==
        detail::RobustLock::kOwnerDied) {
      t.rebuild();
      t.s->recoveries.fetch_add(1, std::memory_order_relaxed);
    }
  }
  ~Held() { pthread_mutex_unlock(&t.s->mutex); }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;
  Table t;
};

// The geometry comes from the caller, which made it (create, anonymous) or checked it against the
// segment's size (open): it is read from the segment once, so a process that rewrites the header
// later cannot make this handle compute past the mapping.
ByteDict::ByteDict(std::shared_ptr<Segment> segment, const Geometry& g)
    : segment_(std::move(segment)), s_(static_cast<Shared*>(segment_->body())) {
  if (g.total_bytes > segment_->size_bytes())
    throw IncompatibleSegment("dict: its layout is larger than its segment");
  capacity_ = g.capacity;
  max_key_bytes_ = g.max_key_bytes;
  max_value_bytes_ = g.max_value_bytes;
  slot_bytes_ = g.slot_bytes;
  buckets_ = g.buckets;
  index_offset_ = g.index_offset;
  free_offset_ = g.free_offset;
  what_ = segment_->anonymous() ? std::string("anonymous dict") : "dict '" + segment_->name() + "'";
}

ByteDict ByteDict::create(std::string_view name, const DictOptions& options) {
  const Geometry g = geometry(options, "dict '" + std::string(name) + "'");
  return ByteDict(
      Segment::create(name, SegmentKind::kDict, g.total_bytes, init_dict(g), options.segment), g);
}

ByteDict ByteDict::anonymous(const DictOptions& options) {
  const Geometry g = geometry(options, "anonymous dict");
  return ByteDict(Segment::anonymous(SegmentKind::kDict, g.total_bytes, init_dict(g)), g);
}

ByteDict ByteDict::open(std::string_view name, const OpenOptions& options) {
  auto seg = Segment::open(name, SegmentKind::kDict, options);
  const std::string what = "dict '" + std::string(name) + "'";
  if (seg->size_bytes() < kSlotsOffset)
    throw IncompatibleSegment(what + " is too small for a dict");
  const auto* s = static_cast<const Shared*>(seg->body());
  DictOptions o;
  o.capacity = s->capacity;
  o.max_key_bytes = s->max_key_bytes;
  o.max_value_bytes = s->max_value_bytes;
  bool ok = s->magic == detail::kDictMagic;
  Geometry g{};
  if (ok) {
    try {
      g = geometry(o, what);
      ok = g.slot_bytes == s->slot_bytes && g.buckets == s->buckets &&
           g.total_bytes == seg->size_bytes();
    } catch (const InvalidArgument&) {
      ok = false;
    }
  }
  if (!ok) throw IncompatibleSegment(what + " has a corrupt or foreign layout");
  return ByteDict(std::move(seg), g);
}

namespace {

void check_sizes(const std::string& what, ByteView key, std::size_t max_key,
                 std::optional<ByteView> value, std::size_t max_value) {
  if (key.size() > max_key)
    throw InvalidArgument(what + ": key of " + std::to_string(key.size()) +
                          " bytes exceeds max_key_bytes " + std::to_string(max_key));
  if (value && value->size() > max_value)
    throw InvalidArgument(what + ": value of " + std::to_string(value->size()) +
                          " bytes exceeds max_value_bytes " + std::to_string(max_value));
}

}  // namespace

bool ByteDict::get(ByteView key, Bytes& out) const {
  if (key.size() > max_key_bytes_) return false;  // no such key can be stored
  Held h(*this);
  const Table::Probe p = h.t.probe(key, hash_key(key));
  if (p.found == kNone) return false;
  const ByteView v = h.t.value_view(h.t.slot_at(p.found));
  out.assign(v.begin(), v.end());
  return true;
}

std::optional<Bytes> ByteDict::get(ByteView key) const {
  Bytes out;
  if (!get(key, out)) return std::nullopt;
  return out;
}

bool ByteDict::set(ByteView key, ByteView value) {
  check_sizes(what_, key, max_key_bytes_, value, max_value_bytes_);
  const std::uint64_t hk = hash_key(key);
  Held h(*this);
  const Table::Probe p = h.t.probe(key, hk);
  if (p.found == kNone && s_->live >= capacity_)
    throw CapacityExceeded(what_ + " is full: its capacity is " + std::to_string(capacity_) +
                           " entries");
  h.t.assign(key, hk, value, p);
  return p.found == kNone;
}

bool ByteDict::erase(ByteView key) {
  if (key.size() > max_key_bytes_) return false;
  Held h(*this);
  const Table::Probe p = h.t.probe(key, hash_key(key));
  if (p.found == kNone) return false;
  h.t.remove(p);
  return true;
}

std::optional<Bytes> ByteDict::take(ByteView key) {
  if (key.size() > max_key_bytes_) return std::nullopt;
  Held h(*this);
  const Table::Probe p = h.t.probe(key, hash_key(key));
  if (p.found == kNone) return std::nullopt;
  const std::size_t n = h.t.slot_at(p.found);
  const ByteView v = h.t.value_view(n);
  Bytes value(v.begin(), v.end());  // copied before the slot is freed
  h.t.remove(p);
  return value;
}

bool ByteDict::contains(ByteView key) const {
  if (key.size() > max_key_bytes_) return false;
  Held h(*this);
  return h.t.probe(key, hash_key(key)).found != kNone;
}

void ByteDict::update(ByteView key, const Updater& fn) {
  check_sizes(what_, key, max_key_bytes_, std::nullopt, 0);
  const std::uint64_t hk = hash_key(key);
  Bytes current;
  Bytes out;
  Held h(*this);
  const Table::Probe p = h.t.probe(key, hk);
  if (p.found != kNone) {
    const ByteView v = h.t.value_view(h.t.slot_at(p.found));
    current.assign(v.begin(), v.end());
  }
  if (!fn(p.found != kNone ? &current : nullptr, out)) return;
  check_sizes(what_, key, max_key_bytes_, ByteView(out), max_value_bytes_);
  if (p.found == kNone && s_->live >= capacity_)
    throw CapacityExceeded(what_ + " is full: its capacity is " + std::to_string(capacity_) +
                           " entries");
  h.t.assign(key, hk, ByteView(out), p);
}

std::size_t ByteDict::size() const {
  Held h(*this);
  return s_->live;
}

// Frees every slot, one stamp store each. Not atomic as a whole: killed part way, it leaves some
// of the entries (each whole, the dict consistent), as the header says.
void ByteDict::clear() {
  Held h(*this);
  for (std::size_t n = 0; n < h.t.slots(); ++n)
    h.t.head(n)->stamp.store(0, std::memory_order_release);
  h.t.rebuild();
}

std::vector<std::pair<Bytes, Bytes>> ByteDict::items() const {
  std::vector<std::pair<Bytes, Bytes>> out;
  Held h(*this);
  out.reserve(std::min<std::size_t>(s_->live, capacity_));  // `live` may have been scribbled
  const std::uint32_t* ix = h.t.index();
  for (std::size_t b = 0; b < buckets_; ++b) {
    if (ix[b] < 2 || ix[b] - 2 >= h.t.slots()) continue;
    const std::size_t n = ix[b] - 2;
    const ByteView k = h.t.key_view(n);
    const ByteView v = h.t.value_view(n);
    out.emplace_back(Bytes(k.begin(), k.end()), Bytes(v.begin(), v.end()));
  }
  return out;
}

std::uint64_t ByteDict::recoveries() const noexcept {
  return s_->recoveries.load(std::memory_order_relaxed);
}

}  // namespace mpt
