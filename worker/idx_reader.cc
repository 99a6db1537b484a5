#include "worker/idx_reader.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sweep::worker {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;
// Bounds the count a header may declare, far above the 60,000 training images, so that a
// corrupt header cannot make the reader allocate gigabytes.
constexpr uint32_t kMaxCount = 1'000'000;

uint32_t BigEndianU32(const uint8_t* bytes) {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
         uint32_t{bytes[3]};
}

// A gzip file opened for reading that rejects plain files and reports zlib errors,
// including CRC32 and length mismatches, as statuses that start with the path.
class GzipReader {
 public:
  static absl::StatusOr<GzipReader> Open(const std::filesystem::path& path) {
    gzFile file = gzopen(path.c_str(), "rb");
    if (file == nullptr) {
      const int error = errno;
      const std::string message = absl::StrCat(
          path.string(), ": cannot open: ", error != 0 ? std::strerror(error) : "out of memory");
      if (error == ENOENT) return absl::NotFoundError(message);
      return absl::FailedPreconditionError(message);
    }
    GzipReader reader(path, file);
    // gzread would pass a file without the gzip magic bytes through unchanged.
    if (gzdirect(file) == 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ": not a gzip file (missing the magic bytes 1f 8b)"));
    }
    return reader;
  }

  GzipReader(GzipReader&& other) noexcept
      : path_(std::move(other.path_)), file_(std::exchange(other.file_, nullptr)) {}
  GzipReader& operator=(GzipReader&&) = delete;
  ~GzipReader() {
    if (file_ != nullptr) gzclose(file_);
  }

  // Reads exactly `size` bytes of decompressed data. `description` names them in errors.
  absl::Status ReadExactly(uint8_t* data, size_t size, std::string_view description) {
    size_t done = 0;
    while (done < size) {
      const unsigned request = static_cast<unsigned>(std::min<size_t>(size - done, INT_MAX));
      const int read = gzread(file_, data + done, request);
      if (read < 0) return ZlibError();
      if (read == 0) {
        absl::Status error = ZlibError();
        if (!error.ok()) return error;
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: data ends after %d bytes of the %d-byte %s", path_.string(), done,
                            size, description));
      }
      done += static_cast<size_t>(read);
    }
    return absl::OkStatus();
  }

  // Checks that no decompressed byte is left, then closes the file. Reading to the end of
  // the gzip member makes zlib verify its CRC32 and length trailer.
  absl::Status ExpectEndAndClose() {
    uint8_t extra = 0;
    const int read = gzread(file_, &extra, 1);
    if (read < 0) return ZlibError();
    if (read > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_.string(), ": unexpected bytes after the last item"));
    }
    absl::Status error = ZlibError();
    if (!error.ok()) return error;
    const int closed = gzclose(std::exchange(file_, nullptr));
    if (closed != Z_OK) {
      return absl::DataLossError(absl::StrCat(path_.string(),
                                              ": gzip data is corrupt or truncated (zlib error ",
                                              closed, " on close)"));
    }
    return absl::OkStatus();
  }

 private:
  GzipReader(std::filesystem::path path, gzFile file) : path_(std::move(path)), file_(file) {}

  // Returns the pending zlib error as DataLoss, or OK when there is none.
  absl::Status ZlibError() {
    int code = Z_OK;
    const char* message = gzerror(file_, &code);
    if (code == Z_OK) return absl::OkStatus();
    if (code == Z_ERRNO) {
      return absl::DataLossError(
          absl::StrCat(path_.string(), ": read failed: ", std::strerror(errno)));
    }
    return absl::DataLossError(
        absl::StrCat(path_.string(), ": gzip data is corrupt or truncated: ", message));
  }

  std::filesystem::path path_;
  gzFile file_;
};

// Reads an IDX header of `Size` bytes and checks its magic number.
template <size_t Size>
absl::StatusOr<std::array<uint8_t, Size>> ReadHeader(GzipReader& reader,
                                                     const std::filesystem::path& path,
                                                     uint32_t expected_magic,
                                                     std::string_view expected_kind) {
  std::array<uint8_t, Size> header{};
  // The magic number is checked before the rest is read, so that a short file of the
  // wrong kind is reported as the wrong kind.
  if (absl::Status status = reader.ReadExactly(header.data(), 4, "magic number"); !status.ok()) {
    return status;
  }
  const uint32_t magic = BigEndianU32(header.data());
  if (magic != expected_magic) {
    std::string_view found_kind = "";
    if (magic == kImagesMagic) found_kind = " (an IDX image file)";
    if (magic == kLabelsMagic) found_kind = " (an IDX label file)";
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: magic number is 0x%08x%s, expected 0x%08x for an IDX %s file",
                        path.string(), magic, found_kind, expected_magic, expected_kind));
  }
  if (absl::Status status = reader.ReadExactly(header.data() + 4, Size - 4, "IDX header");
      !status.ok()) {
    return status;
  }
  return header;
}

absl::Status CheckCount(const std::filesystem::path& path, uint32_t count) {
  if (count > kMaxCount) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: header declares %d items, more than the maximum %d", path.string(), count, kMaxCount));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> ReadIdxImages(const std::filesystem::path& path) {
  absl::StatusOr<GzipReader> reader = GzipReader::Open(path);
  if (!reader.ok()) return reader.status();

  absl::StatusOr<std::array<uint8_t, 16>> header =
      ReadHeader<16>(*reader, path, kImagesMagic, "image");
  if (!header.ok()) return header.status();
  const uint32_t count = BigEndianU32(header->data() + 4);
  const uint32_t rows = BigEndianU32(header->data() + 8);
  const uint32_t columns = BigEndianU32(header->data() + 12);
  if (rows != kImageSide || columns != kImageSide) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: images are %dx%d pixels, expected %dx%d",
                                                      path.string(), rows, columns, kImageSide,
                                                      kImageSide));
  }
  if (absl::Status status = CheckCount(path, count); !status.ok()) return status;

  std::vector<uint8_t> pixels(static_cast<size_t>(count) * kImagePixels);
  if (absl::Status status = reader->ReadExactly(pixels.data(), pixels.size(), "pixel data");
      !status.ok()) {
    return status;
  }
  if (absl::Status status = reader->ExpectEndAndClose(); !status.ok()) return status;
  return pixels;
}

absl::StatusOr<std::vector<uint8_t>> ReadIdxLabels(const std::filesystem::path& path) {
  absl::StatusOr<GzipReader> reader = GzipReader::Open(path);
  if (!reader.ok()) return reader.status();

  absl::StatusOr<std::array<uint8_t, 8>> header =
      ReadHeader<8>(*reader, path, kLabelsMagic, "label");
  if (!header.ok()) return header.status();
  const uint32_t count = BigEndianU32(header->data() + 4);
  if (absl::Status status = CheckCount(path, count); !status.ok()) return status;

  std::vector<uint8_t> labels(count);
  if (absl::Status status = reader->ReadExactly(labels.data(), labels.size(), "label data");
      !status.ok()) {
    return status;
  }
  if (absl::Status status = reader->ExpectEndAndClose(); !status.ok()) return status;

  const auto bad = std::find_if(labels.begin(), labels.end(),
                                [](uint8_t label) { return label >= kNumClasses; });
  if (bad != labels.end()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: label %d at index %d is outside [0, %d]",
                                                      path.string(), *bad, bad - labels.begin(),
                                                      kNumClasses - 1));
  }
  return labels;
}

absl::StatusOr<LabeledImages> ReadLabeledImages(const std::filesystem::path& images_path,
                                                const std::filesystem::path& labels_path) {
  absl::StatusOr<std::vector<uint8_t>> pixels = ReadIdxImages(images_path);
  if (!pixels.ok()) return pixels.status();
  absl::StatusOr<std::vector<uint8_t>> labels = ReadIdxLabels(labels_path);
  if (!labels.ok()) return labels.status();

  const size_t image_count = pixels->size() / kImagePixels;
  if (image_count != labels->size()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s has %d images but %s has %d labels",
                                                      images_path.string(), image_count,
                                                      labels_path.string(), labels->size()));
  }
  return LabeledImages{.pixels = *std::move(pixels), .labels = *std::move(labels)};
}

absl::StatusOr<FashionMnist> ReadFashionMnist(const std::filesystem::path& data_dir) {
  absl::StatusOr<LabeledImages> train = ReadLabeledImages(data_dir / "train-images-idx3-ubyte.gz",
                                                          data_dir / "train-labels-idx1-ubyte.gz");
  if (!train.ok()) return train.status();
  absl::StatusOr<LabeledImages> test = ReadLabeledImages(data_dir / "t10k-images-idx3-ubyte.gz",
                                                         data_dir / "t10k-labels-idx1-ubyte.gz");
  if (!test.ok()) return test.status();
  return FashionMnist{.train = *std::move(train), .test = *std::move(test)};
}

}  // namespace sweep::worker
