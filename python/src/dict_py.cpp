// mpthrottle._SharedDict: the byte-level shared dictionary (mpt/shared_dict.hpp) with Python keys
// and values; python/mpthrottle/__init__.py wraps it as mpthrottle.SharedDict, a MutableMapping.
//
// Keys and values are None, bool, int, float, str or bytes, stored as one tag byte and the
// payload: 'n'; 't' / 'f'; 'i' and 8 bytes (an int that fits int64) or 'I' and its decimal digits
// (a larger one); 'd' and 8 bytes; 's' and UTF-8; 'b' and the bytes. So 1, 1.0 and True are
// three different keys (Python's dict makes them one), and a value reads back as the type it was
// stored as. Anything else is a TypeError.
//
// The GIL: every call keeps it. The dict's mutex is held only for a copy in or out (never while
// Python code runs, so a thread of this process cannot wait for it holding the GIL while another
// holds it waiting for the GIL), and a wait for another process's copy is shorter than releasing
// the GIL would cost.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "binding.hpp"
#include "mpt/shared_dict.hpp"

namespace mpt_python {

namespace {

using mpt::Bytes;
using mpt::ByteView;

void put_raw(Bytes& out, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::byte*>(p);
  out.insert(out.end(), b, b + n);
}

Bytes encode(const py::handle& v) {
  Bytes out;
  if (v.is_none()) {
    out.push_back(std::byte{'n'});
  } else if (py::isinstance<py::bool_>(v)) {
    out.push_back(v.cast<bool>() ? std::byte{'t'} : std::byte{'f'});
  } else if (py::isinstance<py::int_>(v)) {
    int overflow = 0;
    const long long i = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
    if (i == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (overflow == 0) {
      out.push_back(std::byte{'i'});
      const std::int64_t x = i;
      put_raw(out, &x, sizeof x);
    } else {
      out.push_back(std::byte{'I'});
      const std::string digits = py::str(v).cast<std::string>();
      put_raw(out, digits.data(), digits.size());
    }
  } else if (py::isinstance<py::float_>(v)) {
    out.push_back(std::byte{'d'});
    const double d = v.cast<double>();
    put_raw(out, &d, sizeof d);
  } else if (py::isinstance<py::str>(v)) {
    out.push_back(std::byte{'s'});
    const std::string s = v.cast<std::string>();
    put_raw(out, s.data(), s.size());
  } else if (py::isinstance<py::bytes>(v)) {
    out.push_back(std::byte{'b'});
    const std::string s = v.cast<std::string>();
    put_raw(out, s.data(), s.size());
  } else {
    throw py::type_error("SharedDict holds None, bool, int, float, str and bytes, not " +
                         py::str(py::type::handle_of(v).attr("__name__")).cast<std::string>());
  }
  return out;
}

py::object decode(const Bytes& b) {
  if (b.empty()) throw py::value_error("SharedDict: an empty encoding (corrupt entry)");
  const char* p = reinterpret_cast<const char*>(b.data()) + 1;
  const std::size_t n = b.size() - 1;
  switch (static_cast<char>(b[0])) {
    case 'n':
      return py::none();
    case 't':
      return py::bool_(true);
    case 'f':
      return py::bool_(false);
    case 'i': {
      std::int64_t x = 0;
      if (n != sizeof x) break;
      std::memcpy(&x, p, sizeof x);
      return py::int_(x);
    }
    case 'I':
      return py::reinterpret_steal<py::object>(
          PyLong_FromString(std::string(p, n).c_str(), nullptr, 10));
    case 'd': {
      double d = 0;
      if (n != sizeof d) break;
      std::memcpy(&d, p, sizeof d);
      return py::float_(d);
    }
    case 's':
      return py::str(p, n);
    case 'b':
      return py::bytes(p, n);
  }
  throw py::value_error("SharedDict: an entry that this module did not write");
}

// The encoding of a key or value, refused with the sizes the caller knows (without the tag byte)
// when it is larger than the dict allows.
Bytes checked(const mpt::ByteDict& d, const py::handle& v, bool is_key) {
  Bytes b = encode(v);
  const std::size_t max = is_key ? d.max_key_bytes() : d.max_value_bytes();
  const std::size_t limit = max == 0 ? 0 : max - 1;  // a dict made elsewhere may allow 0
  if (b.size() - 1 > limit)
    throw py::value_error(std::string("SharedDict: ") + (is_key ? "key" : "value") + " of " +
                          std::to_string(b.size() - 1) + " bytes exceeds " +
                          (is_key ? "max_key_bytes " : "max_value_bytes ") + std::to_string(limit));
  return b;
}

mpt::DictOptions options(std::size_t capacity, std::size_t max_key, std::size_t max_value,
                         mpt::CreateOptions c = {}) {
  // One tag byte more than the caller asked for, so that the limits are the payload's; checked
  // here in the caller's terms (the library's limits are 64 KiB and 16 MiB with the tag byte).
  constexpr std::size_t kMaxKey = (64u << 10) - 1, kMaxValue = (16u << 20) - 1;
  if (max_key < 1 || max_key > kMaxKey)
    throw py::value_error("SharedDict: max_key_bytes " + std::to_string(max_key) +
                          " is outside 1.." + std::to_string(kMaxKey));
  if (max_value < 1 || max_value > kMaxValue)
    throw py::value_error("SharedDict: max_value_bytes " + std::to_string(max_value) +
                          " is outside 1.." + std::to_string(kMaxValue));
  return {capacity, max_key + 1, max_value + 1, c};
}

mpt::ByteDict create_named(const std::string& name, const mpt::DictOptions& o) {
  mpt::ByteDict d = mpt::ByteDict::create(name, o);
  if (!o.segment.persist) remove_at_exit(name, d.segment()->id());
  return d;
}

// dict.incr(key, delta): an int or float value plus delta, atomically; a missing key counts as 0.
py::object incr(mpt::ByteDict& d, const py::handle& key, const py::handle& delta) {
  const Bytes k = checked(d, key, true);
  const Bytes dv = encode(delta);
  if (dv[0] != std::byte{'i'} && dv[0] != std::byte{'d'})
    throw py::type_error("SharedDict.incr: delta must be an int (within int64) or a float");
  std::string error;
  Bytes stored;
  d.update(ByteView(k), [&](const Bytes* current, Bytes& out) {
    Bytes cur = current ? *current : Bytes{std::byte{'i'}, {}, {}, {}, {}, {}, {}, {}, {}};
    const bool is_int = cur.size() == 9 && cur[0] == std::byte{'i'};
    const bool is_float = cur.size() == 9 && cur[0] == std::byte{'d'};
    if (!is_int && !is_float) {
      error = "SharedDict.incr: the value is not an int (within int64) or a float";
      return false;
    }
    std::int64_t ci = 0, di = 0;
    double cd = 0, dd = 0;
    std::memcpy(&ci, cur.data() + 1, 8);
    std::memcpy(&cd, cur.data() + 1, 8);
    std::memcpy(&di, dv.data() + 1, 8);
    std::memcpy(&dd, dv.data() + 1, 8);
    out.assign(9, std::byte{0});
    if (is_int && dv[0] == std::byte{'i'}) {
      out[0] = std::byte{'i'};
      const std::int64_t r = static_cast<std::int64_t>(static_cast<std::uint64_t>(ci) +
                                                       static_cast<std::uint64_t>(di));
      std::memcpy(out.data() + 1, &r, 8);
    } else {
      out[0] = std::byte{'d'};
      const double r = (is_int ? static_cast<double>(ci) : cd) +
                       (dv[0] == std::byte{'i'} ? static_cast<double>(di) : dd);
      std::memcpy(out.data() + 1, &r, 8);
    }
    stored = out;
    return true;
  });
  if (!error.empty()) throw py::type_error(error);
  return decode(stored);
}

// dict.setdefault(key, default): the value of key, storing default first if there was none.
py::object setdefault(mpt::ByteDict& d, const py::handle& key, const py::handle& dflt) {
  const Bytes k = checked(d, key, true);
  const Bytes v = checked(d, dflt, false);
  Bytes found;
  d.update(ByteView(k), [&](const Bytes* current, Bytes& out) {
    found = current ? *current : v;
    if (current) return false;
    out = v;
    return true;
  });
  return decode(found);
}

py::list items(const mpt::ByteDict& d) {
  py::list out;
  for (const auto& [k, v] : d.items())
    out.append(py::make_tuple(decode(k), decode(v)));
  return out;
}

void bind_access(py::class_<mpt::ByteDict>& c) {
  c.def(
      "get",
      [](const mpt::ByteDict& d, const py::handle& key, const py::object& dflt) -> py::object {
        Bytes out;
        return d.get(ByteView(encode(key)), out) ? decode(out) : dflt;
      },
      py::arg("key"), py::arg("default") = py::none());
  c.def(
      "set",
      [](mpt::ByteDict& d, const py::handle& key, const py::handle& value) {
        return d.set(ByteView(checked(d, key, true)), ByteView(checked(d, value, false)));
      },
      py::arg("key"), py::arg("value"), "Stores value under key; True if the key was new.");
  c.def(
      "erase",
      [](mpt::ByteDict& d, const py::handle& key) { return d.erase(ByteView(encode(key))); },
      py::arg("key"), "Removes key; True if it was there.");
  c.def(
      "contains",
      [](const mpt::ByteDict& d, const py::handle& key) {
        return d.contains(ByteView(encode(key)));
      },
      py::arg("key"));
  c.def(
      "take",
      [](mpt::ByteDict& d, const py::handle& key) {
        const auto v = d.take(ByteView(encode(key)));
        return v ? py::make_tuple(true, decode(*v)) : py::make_tuple(false, py::none());
      },
      py::arg("key"),
      "Removes key and returns (True, value) in one step; (False, None) if absent.");
  c.def("incr", &incr, py::arg("key"), py::arg("delta") = 1);
  c.def("setdefault", &setdefault, py::arg("key"), py::arg("default") = py::none());
  c.def("items", &items, "Every (key, value) pair, as of one moment.");
  c.def("size", &mpt::ByteDict::size);
  c.def("clear", &mpt::ByteDict::clear);
}

}  // namespace

void bind_dict(py::module_& m) {
  py::class_<mpt::ByteDict> c(m, "_SharedDict",
                              "The shared dictionary's engine; use mpthrottle.SharedDict.");
  c.def(py::init([](std::size_t capacity, std::size_t max_key, std::size_t max_value) {
          return create_named(unique_name(), options(capacity, max_key, max_value));
        }),
        py::arg("capacity"), py::arg("max_key_bytes"), py::arg("max_value_bytes"));
  c.def_static(
      "create",
      [](const std::string& name, std::size_t capacity, std::size_t max_key, std::size_t max_value,
         unsigned mode, bool persist) {
        return create_named(
            name, options(capacity, max_key, max_value, {static_cast<mode_t>(mode), persist}));
      },
      py::arg("name"), py::arg("capacity"), py::arg("max_key_bytes"), py::arg("max_value_bytes"),
      py::arg("mode") = 0600, py::arg("persist") = false);
  c.def_static(
      "open", [](const std::string& name) { return mpt::ByteDict::open(name); }, py::arg("name"));
  c.def_static("remove", &mpt::Segment::remove, py::arg("name"));
  bind_access(c);
  c.def_property_readonly("name", [](const mpt::ByteDict& d) { return d.segment()->name(); });
  c.def_property_readonly("capacity", &mpt::ByteDict::capacity);
  c.def_property_readonly("max_key_bytes",
                          [](const mpt::ByteDict& d) { return d.max_key_bytes() - 1; });
  c.def_property_readonly("max_value_bytes",
                          [](const mpt::ByteDict& d) { return d.max_value_bytes() - 1; });
  c.def_property_readonly("recoveries", &mpt::ByteDict::recoveries);
}

}  // namespace mpt_python
