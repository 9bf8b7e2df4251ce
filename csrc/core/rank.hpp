// The contract's order between candidates, shared by host and device: larger gain first, then the
// smaller index. Index -1 means "no candidate" and ranks below everything, so block-wide argmax
// reductions can start from an empty value.
#pragma once
#include <cstdint>

#include "precision.hpp"

namespace clipcov {

CLIPCOV_HD bool ranks_above(double ga, int64_t ia, double gb, int64_t ib) {
  if (ia < 0) return false;
  if (ib < 0) return true;
  return ga > gb || (ga == gb && ia < ib);
}

}  // namespace clipcov
