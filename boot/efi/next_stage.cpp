#include "boot/efi/next_stage.hpp"

#include <efilib.h>

#include "kernel/base/log.hpp"

namespace microhv::boot {
namespace {

constexpr UINTN kMaxConfigBytes = 4096;
// Internal linkage on purpose: GNU-EFI applies only RELATIVE relocations, and
// an ODR-used `inline constexpr` object gets a GLOB_DAT it never resolves.
constexpr char16_t kConfigPath[] = u"\\EFI\\microhv\\microhv.cfg";

EFI_FILE_HANDLE open_root(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, EFI_HANDLE* device) {
  EFI_LOADED_IMAGE* loaded = nullptr;
  if (EFI_ERROR(st->BootServices->HandleProtocol(image, &LoadedImageProtocol,
                                                 reinterpret_cast<void**>(&loaded)))) {
    return nullptr;
  }
  EFI_SIMPLE_FILE_SYSTEM_PROTOCOL* fs = nullptr;
  if (EFI_ERROR(st->BootServices->HandleProtocol(loaded->DeviceHandle, &FileSystemProtocol,
                                                 reinterpret_cast<void**>(&fs)))) {
    return nullptr;
  }
  EFI_FILE_HANDLE root = nullptr;
  if (EFI_ERROR(fs->OpenVolume(fs, &root))) return nullptr;
  *device = loaded->DeviceHandle;
  return root;
}

// Device path of `device` with one file node for `path` appended (UEFI spec
// 10.3.5.4, "File Path Media Device Path"), in pool memory.
EFI_DEVICE_PATH* file_device_path(EFI_SYSTEM_TABLE* st, EFI_HANDLE device, const CHAR16* path) {
  EFI_DEVICE_PATH* base = nullptr;
  if (EFI_ERROR(st->BootServices->HandleProtocol(device, &DevicePathProtocol,
                                                 reinterpret_cast<void**>(&base)))) {
    return nullptr;
  }
  auto node_length = [](const EFI_DEVICE_PATH* n) {
    return static_cast<UINTN>(n->Length[0] | (n->Length[1] << 8));
  };
  UINTN base_size = 0;  // every node up to, not including, the end node
  for (auto* n = base;
       !(n->Type == END_DEVICE_PATH_TYPE && n->SubType == END_ENTIRE_DEVICE_PATH_SUBTYPE);
       n = reinterpret_cast<EFI_DEVICE_PATH*>(reinterpret_cast<UINT8*>(n) + node_length(n))) {
    if (node_length(n) < 4) return nullptr;  // malformed: would loop forever
    base_size += node_length(n);
  }
  UINTN chars = 0;
  while (path[chars] != 0) ++chars;
  UINTN file_size = 4 + (chars + 1) * sizeof(CHAR16);
  UINT8* out = nullptr;
  if (EFI_ERROR(st->BootServices->AllocatePool(EfiLoaderData, base_size + file_size + 4,
                                               reinterpret_cast<void**>(&out)))) {
    return nullptr;
  }
  __builtin_memcpy(out, base, base_size);
  UINT8* file = out + base_size;
  file[0] = MEDIA_DEVICE_PATH;
  file[1] = MEDIA_FILEPATH_DP;
  file[2] = static_cast<UINT8>(file_size);
  file[3] = static_cast<UINT8>(file_size >> 8);
  __builtin_memcpy(file + 4, path, (chars + 1) * sizeof(CHAR16));
  UINT8* end = file + file_size;
  end[0] = END_DEVICE_PATH_TYPE;
  end[1] = END_ENTIRE_DEVICE_PATH_SUBTYPE;
  end[2] = 4;
  end[3] = 0;
  return reinterpret_cast<EFI_DEVICE_PATH*>(out);
}

// ASCII path or options to UCS-2, always terminated.
void widen(const char* in, CHAR16* out, size_t cap) {
  size_t i = 0;
  for (; in[i] != '\0' && i + 1 < cap; ++i) out[i] = static_cast<CHAR16>(in[i]);
  out[i] = 0;
}

}  // namespace

void read_config(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, Config* out) {
  *out = Config{};
  EFI_HANDLE device = nullptr;
  EFI_FILE_HANDLE root = open_root(image, st, &device);
  if (root == nullptr) {
    log::info("config: cannot open microhv's own volume; no next stage\n");
    return;
  }
  EFI_FILE_HANDLE file = nullptr;
  CHAR16 path[sizeof(kConfigPath) / sizeof(kConfigPath[0])];
  for (size_t i = 0; i < sizeof(kConfigPath) / sizeof(kConfigPath[0]); ++i)
    path[i] = kConfigPath[i];
  if (EFI_ERROR(root->Open(root, &file, path, EFI_FILE_MODE_READ, 0))) {
    log::info("config: no \\EFI\\microhv\\microhv.cfg; no next stage\n");
    root->Close(root);
    return;
  }
  static char text[kMaxConfigBytes];
  UINTN size = sizeof(text);
  EFI_STATUS status = file->Read(file, &size, text);
  file->Close(file);
  root->Close(root);
  if (EFI_ERROR(status)) {
    log::error("config: reading microhv.cfg failed (status 0x%lx); no next stage\n", status);
    return;
  }
  char error[96];
  if (!parse_config(text, size, out, error, sizeof(error))) {
    // What the file said about DMA isolation is unknown: the strictest
    // policy, so that a typo cannot turn `iommu = required` into less.
    log::error(
        "config: microhv.cfg %s; fix the file. No next stage, and iommu = required until it "
        "parses.\n",
        error);
    *out = Config{};
    out->iommu = IommuPolicy::kRequired;
    return;
  }
  log::info("config: image=%s options=%s testdev=%s iommu=%s%s\n",
            out->image[0] ? out->image : "(none)", out->options, out->testdev ? "on" : "off",
            iommu_policy_name(out->iommu), out->vtd_selftest ? " vtd-selftest=on" : "");
}

EFI_STATUS start_next_stage(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, const Config& config) {
  EFI_HANDLE device = nullptr;
  EFI_FILE_HANDLE root = open_root(image, st, &device);
  if (root == nullptr) return EFI_NOT_FOUND;
  root->Close(root);

  static CHAR16 path[Config::kMaxPath];
  static CHAR16 options[Config::kMaxOptions];
  widen(config.image, path, Config::kMaxPath);
  widen(config.options, options, Config::kMaxOptions);
  EFI_DEVICE_PATH* file_path = file_device_path(st, device, path);
  if (file_path == nullptr) return EFI_OUT_OF_RESOURCES;

  EFI_HANDLE child = nullptr;
  EFI_STATUS status = st->BootServices->LoadImage(FALSE, image, file_path, nullptr, 0, &child);
  if (EFI_ERROR(status)) {
    log::error("cannot load next stage %s (status 0x%lx); check the image path in microhv.cfg\n",
               config.image, status);
    return status;
  }
  EFI_LOADED_IMAGE* loaded = nullptr;
  if (!EFI_ERROR(st->BootServices->HandleProtocol(child, &LoadedImageProtocol,
                                                  reinterpret_cast<void**>(&loaded)))) {
    size_t n = 0;
    while (options[n] != 0) ++n;
    loaded->LoadOptions = options;
    loaded->LoadOptionsSize = static_cast<UINT32>((n + 1) * sizeof(CHAR16));
  }
  log::info("starting next stage %s\n", config.image);
  status = st->BootServices->StartImage(child, nullptr, nullptr);
  log::info("next stage returned status 0x%lx\n", status);
  return status;
}

}  // namespace microhv::boot
