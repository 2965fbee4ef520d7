// libFuzzer target for the microhv.cfg parser (kernel/base/config.hpp), the
// one input microhv reads from disk before it virtualizes anything.
//  - structured: the fuzzer writes a file of lines it chose itself (blank
//    lines, comments, `key = value` with random spacing, CRLF, unknown keys,
//    values too long, lines without '=') and knows the result: the fields of
//    the last assignment of each key, or the first bad line's number;
//  - raw bytes: no fault, every field NUL-terminated within its buffer, and
//    an error message that names a line of the file.
#include <string>

#include "kernel/base/config.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace microhv;
using namespace microhv::fuzz;

namespace {

bool terminated(const char* field, size_t cap) {
  for (size_t i = 0; i < cap; ++i) {
    if (field[i] == '\0') return true;
  }
  return false;
}

std::string spaces(Reader& in) {
  static const char* kSpace[] = {"", " ", "  ", "\t", " \t "};
  return kSpace[in.pick(5)];
}

// A value: printable, no '#' (a comment) and no leading or trailing blank.
std::string value(Reader& in) {
  const uint32_t n = in.pick(8) == 0 ? 200 + in.take<uint16_t>() % 400 : in.pick(24);
  std::string v;
  for (uint32_t i = 0; i < n; ++i) {
    char c = static_cast<char>(0x21 + in.pick(94));  // '!'..'~'
    if (c == '#') c = '\\';
    if (i > 0 && i + 1 < n && in.pick(8) == 0) c = ' ';
    v += c;
  }
  return v;
}

struct Want {
  bool ok = true;
  unsigned bad_line = 0;
  std::string image, options;
  bool testdev = false;
  bool vtd_selftest = false;
  IommuPolicy iommu = IommuPolicy::kIfPresent;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in{data, size};
  Config config;
  char error[128];
  if (in.flag()) {
    std::memset(error, 0x55, sizeof(error));
    const bool ok = parse_config(reinterpret_cast<const char*>(in.data), in.size, &config, error,
                                 sizeof(error));
    expect(terminated(config.image, sizeof(config.image)) &&
               terminated(config.options, sizeof(config.options)),
           "a config field is not NUL-terminated");
    if (!ok) {
      expect(terminated(error, sizeof(error)) && std::strncmp(error, "line ", 5) == 0,
             "a config error that names no line");
      size_t lines = 1;
      for (size_t i = 0; i < in.size; ++i) lines += in.data[i] == '\n' ? 1 : 0;
      expect(std::strtoul(error + 5, nullptr, 10) <= lines,
             "a config error names a line past the end");
    }
    return 0;
  }
  std::string text;
  Want want;
  const uint32_t n_lines = in.pick(12);
  for (unsigned line = 1; line <= n_lines; ++line) {
    std::string l;
    const uint32_t kind = in.pick(11);
    std::string key, v = value(in);
    bool bad = false;
    switch (kind) {
      case 0:
        l = spaces(in);
        break;
      case 1:
        l = spaces(in) + "# " + v;
        break;
      case 2:
        l = spaces(in) + v + "no equals sign";  // no '=' after trimming a comment
        for (char& c : l) c = c == '=' ? '-' : c;
        bad = true;
        break;
      case 3:
        key = "imagine";  // unknown key
        bad = true;
        break;
      case 4:
      case 5:
        key = "image";
        bad = v.size() + 1 > Config::kMaxPath;
        if (!bad) want.image = v;
        break;
      case 6:
      case 7:
        key = "options";
        bad = v.size() + 1 > Config::kMaxOptions;
        if (!bad) want.options = v;
        break;
      case 8:
      case 9: {
        key = kind == 8 ? "testdev" : "vtd-selftest";
        const uint32_t t = in.pick(3);
        v = t == 0 ? "on" : t == 1 ? "off" : "maybe";
        bad = t == 2;
        if (!bad) (kind == 8 ? want.testdev : want.vtd_selftest) = t == 0;
        break;
      }
      case 10: {
        // Issue 14: exactly these three words; anything else is refused.
        key = "iommu";
        static const char* kWords[] = {"required", "if-present", "off", "on", "Required", ""};
        static const IommuPolicy kPolicies[] = {IommuPolicy::kRequired, IommuPolicy::kIfPresent,
                                                IommuPolicy::kOff};
        const uint32_t t = in.pick(6);
        v = kWords[t];
        bad = t >= 3;
        if (!bad) want.iommu = kPolicies[t];
        break;
      }
    }
    if (!key.empty()) {
      l = spaces(in) + key + spaces(in) + "=" + spaces(in) + v + spaces(in);
      if (in.flag()) l += "# trailing comment = too";
    }
    if (bad && want.ok) {
      want.ok = false;
      want.bad_line = line;
    }
    text += l + (in.flag() ? "\r\n" : "\n");
  }
  const bool ok = parse_config(text.data(), text.size(), &config, error, sizeof(error));
  expect(ok == want.ok, ok ? "a bad config file was accepted" : "a good config file was refused");
  if (!ok) {
    expect(std::strtoul(error + 5, nullptr, 10) == want.bad_line, "the error names the wrong line");
    return 0;
  }
  expect(want.image == config.image && want.options == config.options &&
             want.testdev == config.testdev && want.vtd_selftest == config.vtd_selftest &&
             want.iommu == config.iommu,
         "a config field differs from the file");
  return 0;
}
