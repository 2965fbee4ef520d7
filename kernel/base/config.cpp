#include "kernel/base/config.hpp"

#include "kernel/base/log.hpp"
#include "kernel/base/text.hpp"

namespace microhv {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

struct Slice {
  const char* begin;
  const char* end;
  size_t size() const { return static_cast<size_t>(end - begin); }
  bool equals(const char* s) const { return text_equals(begin, size(), s); }
};

Slice trim(Slice s) {
  while (s.begin < s.end && is_space(*s.begin)) ++s.begin;
  while (s.end > s.begin && is_space(s.end[-1])) --s.end;
  return s;
}

// `on` or `off` into *out; false for anything else.
bool parse_switch(Slice value, bool* out) {
  if (value.equals("on") || value.equals("off")) {
    *out = value.equals("on");
    return true;
  }
  return false;
}

bool copy_value(Slice value, char* dst, size_t cap) {
  if (value.size() + 1 > cap) return false;
  for (size_t i = 0; i < value.size(); ++i) dst[i] = value.begin[i];
  dst[value.size()] = '\0';
  return true;
}

}  // namespace

bool parse_config(const char* text, size_t len, Config* out, char* error, size_t error_cap) {
  *out = Config{};
  const char* end = text + len;
  unsigned line_no = 0;
  for (const char* p = text; p < end;) {
    const char* eol = p;
    while (eol < end && *eol != '\n') ++eol;
    ++line_no;
    Slice line{p, eol};
    p = eol < end ? eol + 1 : eol;
    for (const char* c = line.begin; c < line.end; ++c) {
      if (*c == '#') {
        line.end = c;
        break;
      }
    }
    line = trim(line);
    if (line.size() == 0) continue;
    const char* eq = line.begin;
    while (eq < line.end && *eq != '=') ++eq;
    if (eq == line.end) {
      format(error, error_cap, "line %u: expected `key = value`", line_no);
      return false;
    }
    Slice key = trim({line.begin, eq});
    Slice value = trim({eq + 1, line.end});
    bool ok = true;
    if (key.equals("image")) {
      ok = copy_value(value, out->image, sizeof(out->image));
    } else if (key.equals("options")) {
      ok = copy_value(value, out->options, sizeof(out->options));
    } else if (key.equals("testdev") || key.equals("vtd-selftest")) {
      const bool testdev = key.equals("testdev");
      if (!parse_switch(value, testdev ? &out->testdev : &out->vtd_selftest)) {
        format(error, error_cap, "line %u: %s must be on or off", line_no,
               testdev ? "testdev" : "vtd-selftest");
        return false;
      }
    } else if (key.equals("iommu")) {
      if (!parse_iommu_policy(value.begin, value.size(), &out->iommu)) {
        format(error, error_cap, "line %u: iommu must be required, if-present or off", line_no);
        return false;
      }
    } else {
      format(error, error_cap,
             "line %u: unknown key (known: image, options, testdev, iommu, vtd-selftest)", line_no);
      return false;
    }
    if (!ok) {
      format(error, error_cap, "line %u: value too long", line_no);
      return false;
    }
  }
  return true;
}

}  // namespace microhv
