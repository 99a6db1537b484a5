#include "worker/idx_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace sweep::worker {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

void AppendBigEndian(std::vector<uint8_t>& bytes, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8)
    bytes.push_back(static_cast<uint8_t>(value >> shift));
}

// IDX image bytes with `count` images whose pixels are their index modulo 256.
std::vector<uint8_t> ImageBytes(uint32_t count, uint32_t rows = 28, uint32_t columns = 28) {
  std::vector<uint8_t> bytes;
  AppendBigEndian(bytes, 0x00000803);
  AppendBigEndian(bytes, count);
  AppendBigEndian(bytes, rows);
  AppendBigEndian(bytes, columns);
  for (uint32_t i = 0; i < count * rows * columns; ++i) bytes.push_back(static_cast<uint8_t>(i));
  return bytes;
}

std::vector<uint8_t> LabelBytes(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> bytes;
  AppendBigEndian(bytes, 0x00000801);
  AppendBigEndian(bytes, static_cast<uint32_t>(labels.size()));
  bytes.insert(bytes.end(), labels.begin(), labels.end());
  return bytes;
}

class IdxReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `bytes` gzip-compressed to `name` in the test's directory and returns its path.
  std::filesystem::path WriteGzip(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::filesystem::path path = dir_ / name;
    gzFile file = gzopen(path.c_str(), "wb");
    EXPECT_NE(file, nullptr);
    EXPECT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
              static_cast<int>(bytes.size()));
    EXPECT_EQ(gzclose(file), Z_OK);
    return path;
  }

  std::filesystem::path WritePlain(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::filesystem::path path = dir_ / name;
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  static std::vector<uint8_t> ReadRaw(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  std::filesystem::path dir_;
};

TEST(IdxReaderRealDataTest, ReadsFashionMnistCounts) {
  absl::StatusOr<FashionMnist> data = ReadFashionMnist(SWEEP_FASHION_MNIST_DIR);
  ASSERT_TRUE(data.ok()) << data.status();

  EXPECT_EQ(data->train.size(), 60000);
  EXPECT_EQ(data->test.size(), 10000);
  EXPECT_EQ(data->train.pixels.size(), 60000u * 28 * 28);
  EXPECT_EQ(data->test.pixels.size(), 10000u * 28 * 28);
}

TEST(IdxReaderRealDataTest, EachClassHasSixThousandTrainingImages) {
  absl::StatusOr<FashionMnist> data = ReadFashionMnist(SWEEP_FASHION_MNIST_DIR);
  ASSERT_TRUE(data.ok()) << data.status();

  std::array<int, kNumClasses> train_counts{};
  for (uint8_t label : data->train.labels) ++train_counts[label];
  std::array<int, kNumClasses> test_counts{};
  for (uint8_t label : data->test.labels) ++test_counts[label];
  for (int label = 0; label < kNumClasses; ++label) {
    SCOPED_TRACE(label);
    EXPECT_EQ(train_counts[label], 6000);
    EXPECT_EQ(test_counts[label], 1000);
  }
}

TEST_F(IdxReaderTest, ReadsValidFiles) {
  const std::filesystem::path images = WriteGzip("images.gz", ImageBytes(3));
  const std::filesystem::path labels = WriteGzip("labels.gz", LabelBytes({0, 9, 4}));

  absl::StatusOr<LabeledImages> data = ReadLabeledImages(images, labels);

  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->size(), 3);
  EXPECT_EQ(data->labels, (std::vector<uint8_t>{0, 9, 4}));
  ASSERT_EQ(data->pixels.size(), 3u * 784);
  EXPECT_EQ(data->pixels[785], 785 % 256);
}

TEST_F(IdxReaderTest, MissingFileIsNotFound) {
  absl::StatusOr<std::vector<uint8_t>> images = ReadIdxImages(dir_ / "absent.gz");

  EXPECT_EQ(images.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(images.status().ToString(), HasSubstr((dir_ / "absent.gz").string()));
}

TEST_F(IdxReaderTest, TruncatedGzipIsDataLoss) {
  const std::filesystem::path path = WriteGzip("images.gz", ImageBytes(20));
  std::vector<uint8_t> raw = ReadRaw(path);
  raw.resize(raw.size() / 2);
  WritePlain("images.gz", raw);

  absl::StatusOr<std::vector<uint8_t>> images = ReadIdxImages(path);

  EXPECT_EQ(images.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(images.status().ToString(),
              AllOf(HasSubstr(path.string()), HasSubstr("unexpected end of file")));
}

TEST_F(IdxReaderTest, FlippedCrcByteIsDataLoss) {
  const std::filesystem::path path = WriteGzip("images.gz", ImageBytes(2));
  std::vector<uint8_t> raw = ReadRaw(path);
  // The gzip trailer is the CRC32 of the data followed by its length, both 4 bytes.
  raw[raw.size() - 8] ^= 0xff;
  WritePlain("images.gz", raw);

  absl::StatusOr<std::vector<uint8_t>> images = ReadIdxImages(path);

  EXPECT_EQ(images.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(images.status().ToString(),
              AllOf(HasSubstr(path.string()), HasSubstr("incorrect data check")));
}

TEST_F(IdxReaderTest, FlippedLengthByteIsDataLoss) {
  const std::filesystem::path path = WriteGzip("labels.gz", LabelBytes({1, 2, 3}));
  std::vector<uint8_t> raw = ReadRaw(path);
  raw[raw.size() - 4] ^= 0x01;
  WritePlain("labels.gz", raw);

  absl::StatusOr<std::vector<uint8_t>> labels = ReadIdxLabels(path);

  EXPECT_EQ(labels.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(labels.status().ToString(),
              AllOf(HasSubstr(path.string()), HasSubstr("incorrect length check")));
}

TEST_F(IdxReaderTest, FlippedPayloadByteIsDataLoss) {
  const std::filesystem::path path = WriteGzip("images.gz", ImageBytes(20));
  std::vector<uint8_t> raw = ReadRaw(path);
  raw[raw.size() / 2] ^= 0x10;
  WritePlain("images.gz", raw);

  absl::StatusOr<std::vector<uint8_t>> images = ReadIdxImages(path);

  EXPECT_EQ(images.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(images.status().ToString(),
              AllOf(HasSubstr(path.string()), HasSubstr("gzip data is corrupt")));
}

TEST_F(IdxReaderTest, LabelFileAsImagesIsRejected) {
  const std::filesystem::path path = WriteGzip("labels.gz", LabelBytes({1, 2}));

  absl::StatusOr<std::vector<uint8_t>> images = ReadIdxImages(path);

  EXPECT_EQ(images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(images.status().ToString(),
              AllOf(HasSubstr(path.string()),
                    HasSubstr("magic number is 0x00000801 (an IDX label file), expected "
                              "0x00000803 for an IDX image file")));
}

TEST_F(IdxReaderTest, SwappedFilesInDataDirAreRejected) {
  WriteGzip("train-images-idx3-ubyte.gz", LabelBytes({1, 2}));
  WriteGzip("train-labels-idx1-ubyte.gz", ImageBytes(2));

  absl::StatusOr<FashionMnist> data = ReadFashionMnist(dir_);

  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().ToString(),
              AllOf(HasSubstr((dir_ / "train-images-idx3-ubyte.gz").string()),
                    HasSubstr("(an IDX label file)")));
}

TEST_F(IdxReaderTest, ImageFileAsLabelsIsRejected) {
  const std::filesystem::path path = WriteGzip("images.gz", ImageBytes(1));

  absl::StatusOr<std::vector<uint8_t>> labels = ReadIdxLabels(path);

  EXPECT_EQ(labels.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(labels.status().ToString(),
              AllOf(HasSubstr(path.string()),
                    HasSubstr("magic number is 0x00000803 (an IDX image file), expected "
                              "0x00000801 for an IDX label file")));
}

TEST_F(IdxReaderTest, PlainFileIsRejected) {
  const std::filesystem::path path = WritePlain("images.gz", ImageBytes(2));

  absl::StatusOr<std::vector<uint8_t>> images = ReadIdxImages(path);

  EXPECT_EQ(images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(images.status().ToString(),
              AllOf(HasSubstr(path.string()), HasSubstr("not a gzip file")));
}

TEST_F(IdxReaderTest, EmptyFileIsRejected) {
  const std::filesystem::path path = WritePlain("labels.gz", {});

  absl::StatusOr<std::vector<uint8_t>> labels = ReadIdxLabels(path);

  EXPECT_EQ(labels.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(labels.status().ToString(),
              AllOf(HasSubstr(path.string()), HasSubstr("not a gzip file")));
}

TEST_F(IdxReaderTest, LabelTenIsRejected) {
  const std::filesystem::path path = WriteGzip("labels.gz", LabelBytes({0, 9, 3, 10, 2}));

  absl::StatusOr<std::vector<uint8_t>> labels = ReadIdxLabels(path);

  EXPECT_EQ(labels.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(labels.status().ToString(),
              AllOf(HasSubstr(path.string()), HasSubstr("label 10 at index 3 is outside [0, 9]")));
}

TEST_F(IdxReaderTest, WrongDimensionsAreRejected) {
  const std::filesystem::path path = WriteGzip("images.gz", ImageBytes(2, 32, 28));

  absl::StatusOr<std::vector<uint8_t>> images = ReadIdxImages(path);

  EXPECT_EQ(images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      images.status().ToString(),
      AllOf(HasSubstr(path.string()), HasSubstr("images are 32x28 pixels, expected 28x28")));
}

TEST_F(IdxReaderTest, TrailingBytesAreRejected) {
  std::vector<uint8_t> bytes = LabelBytes({1, 2});
  bytes.push_back(3);
  const std::filesystem::path path = WriteGzip("labels.gz", bytes);

  absl::StatusOr<std::vector<uint8_t>> labels = ReadIdxLabels(path);

  EXPECT_EQ(labels.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(labels.status().ToString(),
              AllOf(HasSubstr(path.string()), HasSubstr("unexpected bytes after the last item")));
}

TEST_F(IdxReaderTest, ShortPayloadIsRejected) {
  std::vector<uint8_t> bytes = ImageBytes(2);
  bytes.pop_back();
  const std::filesystem::path path = WriteGzip("images.gz", bytes);

  absl::StatusOr<std::vector<uint8_t>> images = ReadIdxImages(path);

  EXPECT_EQ(images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(images.status().ToString(),
              AllOf(HasSubstr(path.string()),
                    HasSubstr("data ends after 1567 bytes of the 1568-byte pixel data")));
}

TEST_F(IdxReaderTest, HugeDeclaredCountIsRejected) {
  std::vector<uint8_t> bytes;
  AppendBigEndian(bytes, 0x00000801);
  AppendBigEndian(bytes, 0xffffffff);
  const std::filesystem::path path = WriteGzip("labels.gz", bytes);

  absl::StatusOr<std::vector<uint8_t>> labels = ReadIdxLabels(path);

  EXPECT_EQ(labels.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(labels.status().ToString(),
              AllOf(HasSubstr(path.string()), HasSubstr("more than the maximum 1000000")));
}

TEST_F(IdxReaderTest, UnequalCountsAreRejected) {
  const std::filesystem::path images = WriteGzip("images.gz", ImageBytes(3));
  const std::filesystem::path labels = WriteGzip("labels.gz", LabelBytes({1, 2}));

  absl::StatusOr<LabeledImages> data = ReadLabeledImages(images, labels);

  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().ToString(), HasSubstr(images.string() + " has 3 images but " +
                                                  labels.string() + " has 2 labels"));
}

}  // namespace
}  // namespace sweep::worker
