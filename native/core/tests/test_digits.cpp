// Unit tests for the MNIST-style digit normalisation.
#include <gtest/gtest.h>

#include "jitvision/core/digits.hpp"
#include "jitvision/core/errors.hpp"

namespace jitvision {
namespace {

// A grey HxWx1 canvas of `paper` with a filled rectangle of `ink` at rows [y0,y1), cols [x0,x1).
torch::Tensor canvas(int h, int w, int paper, int ink, int y0, int x0, int y1, int x1) {
  auto img = torch::full({h, w, 1}, paper, torch::kUInt8);
  img.slice(0, y0, y1).slice(1, x0, x1).fill_(ink);
  return img;
}

std::pair<double, double> centre_of_mass(const torch::Tensor& field) {
  const auto total = field.sum().item<double>();
  const auto ys = torch::arange(field.size(0), torch::kFloat32).unsqueeze(1);
  const auto xs = torch::arange(field.size(1), torch::kFloat32).unsqueeze(0);
  return {(field * ys).sum().item<double>() / total, (field * xs).sum().item<double>() / total};
}

std::array<std::int64_t, 4> ink_box(const torch::Tensor& field) {
  const auto rows = torch::nonzero(field.gt(0.5).any(1)).flatten();
  const auto cols = torch::nonzero(field.gt(0.5).any(0)).flatten();
  return {rows.min().item<std::int64_t>(), cols.min().item<std::int64_t>(), rows.max().item<std::int64_t>() + 1,
          cols.max().item<std::int64_t>() + 1};
}

TEST(NormalizeDigit, DarkInkOnLightPaperOffCentreBecomesCentredLightOnDark) {
  const auto img = canvas(120, 90, 230, 20, 10, 60, 50, 70);  // a 40x10 bar near the top right
  const auto field = normalize_digit(img);
  ASSERT_EQ(field.sizes(), (std::vector<std::int64_t>{28, 28}));
  EXPECT_TRUE(measure_ink(img).inverted);
  const auto [y0, x0, y1, x1] = ink_box(field);
  EXPECT_EQ(y1 - y0, 20);  // longest side fitted to 20
  EXPECT_EQ(x1 - x0, 5);   // aspect kept: 40x10 -> 20x5
  const auto [cy, cx] = centre_of_mass(field);
  EXPECT_NEAR(cy, 13.5, 0.51);
  EXPECT_NEAR(cx, 13.5, 0.51);
  EXPECT_NEAR(field.max().item<float>(), 1.0f, 1e-5);
  EXPECT_EQ(field.min().item<float>(), 0.0f);
}

TEST(NormalizeDigit, PolarityDoesNotMatter) {
  const auto dark_on_light = normalize_digit(canvas(64, 64, 255, 0, 5, 7, 30, 20));
  const auto light_on_dark = normalize_digit(canvas(64, 64, 0, 255, 5, 7, 30, 20));
  EXPECT_FALSE(measure_ink(canvas(64, 64, 0, 255, 5, 7, 30, 20)).inverted);
  EXPECT_TRUE(torch::allclose(dark_on_light, light_on_dark, 1e-5, 1e-5));
}

TEST(NormalizeDigit, ColourEqualsGrey) {
  const auto grey = canvas(50, 70, 200, 40, 10, 10, 40, 30);
  const auto colour = grey.expand({50, 70, 3}).contiguous();
  EXPECT_TRUE(torch::allclose(normalize_digit(grey), normalize_digit(colour), 1e-4, 1e-4));
}

TEST(NormalizeDigit, MnistFormattedInputIsUnchanged) {
  // Already normalised: a 20x8 stroke with graded ink, centre of mass at the field centre.
  auto img = torch::zeros({28, 28, 1}, torch::kUInt8);
  img.slice(0, 4, 24).slice(1, 10, 18).fill_(255);
  img.slice(0, 4, 24).slice(1, 10, 11).fill_(90);
  img.slice(0, 4, 24).slice(1, 17, 18).fill_(90);
  const auto field = normalize_digit(img);
  const auto expected = img.squeeze(2).to(torch::kFloat32) / 255.0f;
  EXPECT_TRUE(torch::allclose(field, expected, 1e-6, 1e-6)) << (field - expected).abs().max();
}

TEST(NormalizeDigit, NoisyBackgroundDoesNotMoveTheBox) {
  torch::manual_seed(7);
  auto img = canvas(100, 100, 200, 30, 60, 20, 90, 35).to(torch::kFloat32);
  img += torch::randn({100, 100, 1}) * 8.0;
  const auto noisy = img.clamp(0, 255).to(torch::kUInt8);
  const auto stats = measure_ink(noisy);
  EXPECT_EQ(stats.box, (std::array<std::int64_t, 4>{60, 20, 90, 35}));
  EXPECT_NEAR(stats.noise_sigma, 8.0, 1.5);
  const auto [y0, x0, y1, x1] = ink_box(normalize_digit(noisy));
  EXPECT_EQ(y1 - y0, 20);
  EXPECT_EQ(x1 - x0, 10);
}

TEST(NormalizeDigit, BlankImageIsAnInputError) {
  EXPECT_THROW(normalize_digit(torch::full({40, 40, 1}, 128, torch::kUInt8)), InputError);
  EXPECT_THROW(normalize_digit(torch::full({40, 40, 3}, 0, torch::kUInt8)), InputError);
}

TEST(NormalizeDigit, PureNoiseIsAnInputErrorNotACrash) {
  torch::manual_seed(3);
  const auto noise = (torch::randn({60, 60, 3}) * 40 + 128).clamp(0, 255).to(torch::kUInt8);
  try {
    normalize_digit(noise);  // may find a speck of "ink"; must never throw anything but InputError
  } catch (const InputError&) {
  }
}

TEST(NormalizeDigit, TinyImageWorks) {
  const auto field = normalize_digit(canvas(3, 3, 0, 255, 1, 1, 2, 2));  // a single pixel of ink
  EXPECT_EQ(field.sizes(), (std::vector<std::int64_t>{28, 28}));
  EXPECT_GT(field.sum().item<float>(), 0.0f);
}

}  // namespace
}  // namespace jitvision
