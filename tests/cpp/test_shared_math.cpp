// CPU tests of the host/device shared math in csrc/core (the same source the CUDA kernels compile):
// half decoding, the contract's ranking, and the tile-entry threshold decision with its recheck band.
// Built and run by tests/test_cuda.py; exits non-zero on the first failure.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "core/precision.hpp"
#include "core/rank.hpp"
#include "core/threshold.hpp"

using namespace clipcov;

static int failures = 0;
#define EXPECT(cond)                                                  \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                     \
    }                                                                 \
  } while (0)

static void test_half() {
  EXPECT(half_to_float(0x3c00) == 1.0f);
  EXPECT(half_to_float(0xc000) == -2.0f);
  EXPECT(half_to_float(0x7bff) == 65504.0f);
  EXPECT(half_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT(half_to_float(0x03ff) == std::ldexp(1023.0f, -24));
  EXPECT(std::isinf(half_to_float(0x7c00)) && half_to_float(0x7c00) > 0);
  EXPECT(std::isnan(half_to_float(0x7e00)));
  EXPECT(std::signbit(half_to_float(0x8000)) && half_to_float(0x8000) == 0.0f);
}

static void test_rank() {
  EXPECT(ranks_above(2.0, 5, 1.0, 0));    // larger gain first
  EXPECT(ranks_above(1.0, 3, 1.0, 7));    // tie: smaller index first
  EXPECT(!ranks_above(1.0, 7, 1.0, 3));
  EXPECT(!ranks_above(1.0, 3, 1.0, 3));   // strict
  EXPECT(ranks_above(-1e300, 0, 0.0, -1));  // anything beats "none"
  EXPECT(!ranks_above(0.0, -1, -1e300, 9));
  EXPECT(!ranks_above(0.0, -1, 0.0, -1));
}

// The recheck band must flag every float32 similarity whose decision s > tau could differ from the
// float64 one: random unit rows, float32 dot in several orders, compared with float64.
static void test_tile_entry() {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nd;
  const int d = 64;
  const double tau = 0.2;
  const double bound = f32_dot_error_bound(d);
  int near = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    std::vector<double> a(d), b(d);
    double na = 0, nb = 0;
    for (int k = 0; k < d; ++k) {
      a[k] = nd(rng);
      b[k] = nd(rng);
      na += a[k] * a[k];
      nb += b[k] * b[k];
    }
    // Steer half the pairs to land right next to tau.
    double exact = 0;
    for (int k = 0; k < d; ++k) exact += a[k] * b[k] / std::sqrt(na * nb);
    if (trial % 2) {
      const double shift = (tau - exact + (double(trial % 7) - 3) * 1e-7);
      for (int k = 0; k < d; ++k) b[k] += shift * a[k] * std::sqrt(nb / na);
      nb = 0;
      for (int k = 0; k < d; ++k) nb += b[k] * b[k];
    }
    // The tiles' float32 dot of the stored rows (scaled in float64 first), in two orders.
    const double sa = 1 / std::sqrt(na), sb = 1 / std::sqrt(nb);
    exact = 0;
    float fwd = 0.0f, rev = 0.0f;
    for (int k = 0; k < d; ++k) {
      exact += a[k] * b[k];
      fwd = std::fma(stored_f32(a[k], sa), stored_f32(b[k], sb), fwd);
      rev = std::fma(stored_f32(a[d - 1 - k], sa), stored_f32(b[d - 1 - k], sb), rev);
    }
    exact *= sa * sb;
    for (float s32 : {fwd, rev}) {
      EXPECT(std::fabs(double(s32) - exact) <= bound);  // unit rows: the band is the bound itself
      const TileEntry te = tile_entry(s32, float(tau), tau, bound);
      if (!te.recheck) EXPECT((double(s32) > double(float(tau))) == (exact > tau));
      if (!te.recheck) EXPECT(std::fabs(te.used - splus(exact, tau)) <= bound);
      near += te.recheck;
    }
  }
  EXPECT(near > 0);  // the steered pairs do reach the band
  // At tau = 0 nothing is rechecked and negatives add zero.
  EXPECT(!tile_entry(1e-9f, 0.0f, 0.0, 1.0).recheck);
  EXPECT(tile_entry(-0.5f, 0.0f, 0.0, 1.0).used == 0.0);
  EXPECT(tile_entry(0.5f, 0.0f, 0.0, 1.0).used == 0.5);
}

// Rows of any magnitude are scaled before the float32 product: raw 1e25 rows overflow it and raw
// 1e-30 rows underflow it; scaled, their similarity keeps its float32 accuracy.
static void test_scaled_before_multiplying() {
  std::mt19937_64 rng(8);
  std::normal_distribution<double> nd;
  const int d = 64;
  for (double mag : {1e25, 1e-30}) {
    std::vector<double> a(d), b(d);
    double na = 0, nb = 0, ab = 0;
    for (int k = 0; k < d; ++k) {
      a[k] = double(float(mag * nd(rng)));  // float32 inputs of that magnitude
      b[k] = double(float(mag * nd(rng)));
      na += a[k] * a[k];
      nb += b[k] * b[k];
      ab += a[k] * b[k];
    }
    const double sa = 1 / std::sqrt(na), sb = 1 / std::sqrt(nb), exact = ab * sa * sb;
    float scaled = 0.0f, raw = 0.0f;
    for (int k = 0; k < d; ++k) {
      scaled = std::fma(stored_f32(a[k], sa), stored_f32(b[k], sb), scaled);
      raw = std::fma(float(a[k]), float(b[k]), raw);
    }
    EXPECT(std::fabs(double(scaled) - exact) <= f32_dot_error_bound(d));
    EXPECT(mag > 1 ? std::isinf(raw) : raw == 0.0f);  // what multiplying first would have given
  }
}

int main() {
  test_half();
  test_rank();
  test_tile_entry();
  test_scaled_before_multiplying();
  if (failures) {
    std::fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  std::puts("shared math: ok");
  return 0;
}
