// Schedules of block pairs for the gradients that update the rows of both blocks of a pair: every
// round pairs each block with at most one other, so the pairs of one round can run in parallel
// without any two threads writing the same rows and without per-thread copies of the
// accumulators. run_rounds (kernel_sum_cpu.cpp) runs the rounds one after another.
//
// A schedule has rounds(), slots(round) and pair(round, slot, first, second), which gives the
// pair of blocks of `slot` in `round`, or false for a slot with nothing to do.
#pragma once

#include <cstdint>
#include <utility>

namespace lcw_fast::cpu {

// Every pair (A, B), A <= B, of `blocks` blocks of rows of one sample (the self-sum gradient:
// groups of tiles). Round 0 pairs every block with itself; the other rounds are the circle
// method over the pairs A < B. With an odd number of blocks one extra "bye" block is added;
// its pairs are skipped.
class RoundRobin {
 public:
  explicit RoundRobin(int64_t blocks) : blocks_(blocks), players_(blocks + (blocks & 1)) {}

  int64_t rounds() const { return 1 + (players_ > 1 ? players_ - 1 : 0); }
  int64_t slots(int64_t round) const { return round == 0 ? blocks_ : players_ / 2; }

  bool pair(int64_t round, int64_t slot, int64_t& first, int64_t& second) const {
    if (round == 0) {
      first = second = slot;
      return true;
    }
    const int64_t ring = players_ - 1;  // the last player stays put, the others rotate
    int64_t a = slot == 0 ? ring : (round - 1 + slot) % ring;
    int64_t b = (round - 1 - slot + ring) % ring;
    if (a > b) std::swap(a, b);
    first = a;
    second = b;
    return second < blocks_;
  }

 private:
  int64_t blocks_, players_;
};

// Every pair (row block A, column block B) of `blocks` blocks of rows of one sample and `blocks`
// blocks of rows of another (the cross gradient w.r.t. both samples): a Latin square, round r
// pairs row block s with column block (s + r) mod blocks.
class LatinSquare {
 public:
  explicit LatinSquare(int64_t blocks) : blocks_(blocks) {}

  int64_t rounds() const { return blocks_; }
  int64_t slots(int64_t) const { return blocks_; }

  bool pair(int64_t round, int64_t slot, int64_t& first, int64_t& second) const {
    first = slot;
    second = (slot + round) % blocks_;
    return true;
  }

 private:
  int64_t blocks_;
};

}  // namespace lcw_fast::cpu
