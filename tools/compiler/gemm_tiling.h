#pragma once
// GEMM tiling of the lowering (lowering.h): the geometry of a tap-based convolution, the output
// row segments and input bands of an M tile, and the tap plan that groups kernel taps into
// weight tiles and band images. Pure functions of the layer shape and the array; the emission
// of DMAs, weight loads and MATMULs that use them is Lowerer::lower_gemm's.
#include <cstdint>
#include <vector>

namespace tpu {

// Convolution geometry of a tap-based GEMM (a dense layer on 1 x 1 inputs is a 1 x 1 conv).
// A band loaded from HBM for a strided 1 x 1 conv holds only the pixels it reads: band pixel
// (iy, ix) is padded input pixel (iy * sub, ix * sub), and the conv over the band has stride 1.
struct Taps {
  std::uint64_t kh, kw, s, pad, W, C, OH, OW, Wp, sub = 1;
};

// Output pixels [m, m + ox1 - ox0) of image b, output row oy, columns ox0 .. ox1 - 1.
struct RowSeg {
  std::uint64_t b, oy, ox0, ox1, m;
};

std::vector<RowSeg> row_segments(std::uint64_t m0, std::uint64_t m1, std::uint64_t oh,
                                 std::uint64_t ow);

// The padded input rows one M tile of a tap-based conv reads, one part per image, stacked in a
// UB slot per channel chunk: part rows iy0 .. iy0 + rows - 1 (padded coordinates) at `off`.
struct BandPart {
  std::uint64_t b, iy0, rows, off;
};
struct Band {
  std::vector<BandPart> parts;
  std::uint64_t rows = 0;  // per chunk
};

Band band_of(const Taps& g, std::uint64_t m0, std::uint64_t m1);

// One K tile of a GEMM: K rows k0 .. k0 + kts - 1. On the taps path it is `taps` kernel taps
// from (ky, kx) on in K's (ky, kx, c) order, read from band image `img` at the anchor pixel
// (oy * s + ky, ox * s + kx).
struct KTile {
  std::uint64_t k0, kts, ky, kx, img;
};

// How one band image of a tap-based conv lays out a UB row per anchor pixel: `taps` segments of
// `chans` channels from channel c0, the i-th at the anchor plus i * (dy, dx) pixels. With one
// tap it is the plain band (one pixel per row); with several, each row holds the concatenated
// channels of several kernel taps, so one weight tile covers them all. Anchors used by its
// tiles span kernel offsets ky in [ky_lo, ky_hi], kx in [kx_lo, kx_hi].
struct BandImage {
  std::uint64_t taps, dy, c0, chans;
  std::int64_t dx;
  std::uint64_t ky_lo, ky_hi, kx_lo, kx_hi;
  // Anchors loaded: every ystep-th row and xstep-th column from the first one used.
  std::uint64_t ystep = 1, xstep = 1;
};

// The K tiles and band images of a tap-based conv.
struct TapPlan {
  std::vector<KTile> ktiles;
  std::vector<BandImage> images;
};

// Kernel rows per tile when whole kernel rows are packed (several kernel_w * C runs per UB
// row, one DMA segment each), or 0 when that does not beat im2col. Per output pixel the array
// takes a cycle per weight tile and the DMA one per UB row it writes (it fetches each HBM burst
// once per transfer, so the overlapping windows of a few channels cost bursts far below their
// segments; the rows remain), so the cost of a choice is the larger of the two:
// ceil(kernel_h / n) tiles against the anchors per output pixel (1, or s when the tiles' first
// rows ky0 differ modulo s and every input row is an anchor row), and im2col's ceil(K / R) tiles
// against its ceil(K / R) rows. Packing must be strictly cheaper (im2col streams one long
// MATMUL per tile from dense rows; packed anchors are every s-th UB row, one MATMUL per output
// row). With these costs packing never wins on a full array (ceil(kh / n) >= ceil(K / R) when
// n * kw * C <= R), so every stem gathers im2col; the path stays for cheaper cost models.
std::uint64_t kernel_rows_per_tile(const Taps& g, std::uint64_t cw, std::uint64_t R);

// Without packing: one K tile per (ky, kx, channel chunk of cw), one plain band per chunk.
// Packing (pack > 1 taps fit a tile, all C channels each): whole kernel rows when that pays
// (kernel_rows_per_tile, for first layers with very few channels), else consecutive taps in
// (ky, kx) order share a tile while they are evenly spaced in HBM (a run along a kernel row, or
// a pair that crosses to the next kernel row), because a DMA gathers them as segments at a
// fixed stride; tiles with the same shape of taps share a band image.
TapPlan tap_plan(const Taps& g, std::uint64_t cw, std::uint64_t pack, std::uint64_t R);

}  // namespace tpu
