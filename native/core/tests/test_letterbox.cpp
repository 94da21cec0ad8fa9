// Letterbox arithmetic and the OpenCV-exact linear resize.
#include <gtest/gtest.h>

#include "jitvision/core/letterbox.hpp"

namespace jitvision {
namespace {

TEST(PlanLetterbox, RectModePadsToTheNextStrideMultiple) {
  const auto p = letterbox_geometry(720, 1280, 640, 32, LetterboxMode::Rect);  // 16:9 video
  EXPECT_EQ(p.resized_w, 640);
  EXPECT_EQ(p.resized_h, 360);
  EXPECT_EQ(p.out_h, 384);
  EXPECT_EQ(p.out_w, 640);
  EXPECT_EQ(p.top, 12);
  EXPECT_EQ(p.bottom, 12);
  EXPECT_EQ(p.left, 0);
  EXPECT_EQ(p.right, 0);
}

TEST(PlanLetterbox, PortraitImage) {
  const auto p = letterbox_geometry(1080, 810, 640, 32, LetterboxMode::Rect);  // bus.jpg
  EXPECT_EQ(p.resized_h, 640);
  EXPECT_EQ(p.resized_w, 480);
  EXPECT_EQ(p.out_h, 640);
  EXPECT_EQ(p.out_w, 480);
}

TEST(PlanLetterbox, SquareModeKeepsTheFullSquare) {
  const auto p = letterbox_geometry(720, 1280, 640, 32, LetterboxMode::Square);
  EXPECT_EQ(p.out_h, 640);
  EXPECT_EQ(p.out_w, 640);
  EXPECT_EQ(p.top, 140);
  EXPECT_EQ(p.bottom, 140);
}

TEST(PlanLetterbox, OddPaddingPutsTheExtraPixelBottomRight) {
  // 500x333 at 640: r = 1.28, resized 426 x 640, width padding 214 % 32 = 22 -> 11/11; square: 214 -> 107/107.
  // 100x73 at 64: r = 0.64, resized 47 x 64, pad 17 -> left round(8.4) = 8, right round(8.6) = 9.
  const auto p = letterbox_geometry(100, 73, 64, 32, LetterboxMode::Square);
  EXPECT_EQ(p.resized_w, 47);
  EXPECT_EQ(p.left, 8);
  EXPECT_EQ(p.right, 9);
  EXPECT_EQ(p.out_w, 64);
}

TEST(PlanLetterbox, SmallImagesAreUpscaled) {
  const auto p = letterbox_geometry(100, 200, 640, 32, LetterboxMode::Rect);
  EXPECT_DOUBLE_EQ(p.ratio, 3.2);
  EXPECT_EQ(p.resized_w, 640);
  EXPECT_EQ(p.resized_h, 320);
  EXPECT_EQ(p.out_h, 320);
}

TEST(PlanLetterbox, RoundsHalfToEvenLikePython) {
  // 3 x 5 at 7: r = 1.4, 3*1.4 = 4.2 -> 4; 5*1.4 = 7. And 5 x 3 -> 7 x 4.2.
  EXPECT_EQ(letterbox_geometry(3, 5, 7, 1, LetterboxMode::Square).resized_h, 4);
  // 2.5 rounds to 2 (half to even): a 1 x 4 image at 10: r = 2.5 -> height 2.5 -> 2.
  EXPECT_EQ(letterbox_geometry(1, 4, 10, 1, LetterboxMode::Square).resized_h, 2);
}

TEST(RoundUpToStride, Rounds) {
  EXPECT_EQ(round_up_to_stride(640, 32), 640);
  EXPECT_EQ(round_up_to_stride(650, 32), 672);
  EXPECT_EQ(round_up_to_stride(1, 32), 32);
}

TEST(ResizeLinear, IdentityAndConstantImages) {
  const auto img = torch::randint(0, 256, {7, 9, 3}, torch::kUInt8);
  EXPECT_TRUE(torch::equal(resize_linear_u8(img, 7, 9), img));
  const auto flat = torch::full({13, 17, 3}, 77, torch::kUInt8);
  EXPECT_TRUE(torch::equal(resize_linear_u8(flat, 5, 6), torch::full({5, 6, 3}, 77, torch::kUInt8)));
  EXPECT_TRUE(torch::equal(resize_linear_u8(flat, 40, 33), torch::full({40, 33, 3}, 77, torch::kUInt8)));
}

TEST(ResizeLinear, ExactHalvingAveragesTwoByTwoWithRounding) {
  auto img = torch::zeros({2, 2, 1}, torch::kUInt8);
  img.view({-1}).copy_(torch::tensor({10, 11, 11, 11}, torch::kUInt8));
  EXPECT_EQ(resize_linear_u8(img, 1, 1).item<int>(), 11);  // (43 + 2) / 4 = 11
}

TEST(ResizeLinear, UpscaleMatchesOpenCvFixedPoint) {
  // A 1x2 ramp 0 -> 255 stretched to 1x4: OpenCV gives 0, 64, 191, 255 (weights 0.75/0.25 in 11-bit fixed point).
  auto img = torch::tensor({0, 255}, torch::kUInt8).view({1, 2, 1});
  const auto out = resize_linear_u8(img, 1, 4).flatten();
  EXPECT_TRUE(torch::equal(out, torch::tensor({0, 64, 191, 255}, torch::kUInt8))) << out;
}

TEST(Letterbox, OutputIsRgbChwScaledWithGreyPadding) {
  auto frame = torch::zeros({2, 4, 3}, torch::kUInt8);
  frame.select(2, 0).fill_(255);  // pure blue in BGR
  const auto geometry = letterbox_geometry(2, 4, 4, 1, LetterboxMode::Square);
  const auto x = letterbox(frame, geometry, torch::kFloat32);
  ASSERT_EQ(x.sizes(), (std::vector<std::int64_t>{1, 3, 4, 4}));
  EXPECT_FLOAT_EQ(x[0][2][1][0].item<float>(), 1.0f);  // blue is the last RGB channel
  EXPECT_FLOAT_EQ(x[0][0][1][0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(x[0][0][0][0].item<float>(), 114.0f / 255.0f);  // padding row
}

}  // namespace
}  // namespace jitvision
