// How a float32 tile entry enters a thresholded sum, shared by host and device.
//
// The tile computes s32 = <a_i, b_j> in float32 and compares it with float(tau). If s32 lies within
// the float32 error band of tau (plus the rounding of tau itself), the float32 decision may differ
// from the float64 one, so the entry is flagged: the caller recomputes it in float64 and adds
// splus(exact, tau) - used. At tau == 0 s+ is continuous, so no entry needs a recheck.
#pragma once
#include <cstdint>

#include "precision.hpp"

namespace clipcov {

struct TileEntry {
  double used;   // what the tile adds to the row and column sums
  bool recheck;  // must be redone in float64
};

// band = f32_dot_error_bound(d) * |a_i| * |b_j| (norms of the stored, scaled rows).
CLIPCOV_HD TileEntry tile_entry(float s32, float tau32, double tau, double band) {
  TileEntry t;
  t.used = s32 > tau32 ? double(s32) : 0.0;
  const double slack = tau32 > tau ? double(tau32) - tau : tau - double(tau32);
  const double gap = double(s32) - tau;
  t.recheck = tau != 0.0 && (gap < 0 ? -gap : gap) <= band + slack;
  return t;
}

// A value as the float32 tiles see it: scaled in float64 first (the CPU store's rounding), so that
// normalized rows of any magnitude reach the float32 product at unit norm (raw 1e25 rows would overflow it,
// raw 1e-30 rows underflow). The dot of two such rows stays inside f32_dot_error_bound(d) * |a| * |b|.
CLIPCOV_HD float stored_f32(double x, double scale) { return float(x * scale); }

}  // namespace clipcov
