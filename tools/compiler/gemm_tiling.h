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
// Tap (ky, kx) of output pixel (oy, ox) reads padded input pixel (oy * s + ky * dh,
// ox * s + kx * dw); `pad` pixels pad each side of a row, `pad_h` rows the top and bottom.
// `contiguous`: the input's pixels in HBM hold just its C channels, so a run of pixels is one
// run of elements; a channel slice of a concat has its pixels ctot > C elements apart.
struct Taps {
  std::uint64_t kh, kw, s, pad, W, C, OH, OW, Wp, sub = 1, dh = 1, dw = 1, pad_h = 0;
  bool contiguous = true;
  // Input rows one output row's window spans.
  std::uint64_t extent_h() const { return (kh - 1) * dh + 1; }
};

// Output pixels [m, m + ox1 - ox0) of image b, output row oy, columns ox0 .. ox1 - 1.
struct RowSeg {
  std::uint64_t b, oy, ox0, ox1, m;
};

std::vector<RowSeg> row_segments(std::uint64_t m0, std::uint64_t m1, std::uint64_t oh,
                                 std::uint64_t ow);

// The padded input rows one M tile of a tap-based conv reads, one part per image: part rows
// iy0 .. iy0 + rows - 1 (padded coordinates), laid out in a UB slot by band_layout.
struct BandPart {
  std::uint64_t b, iy0, rows;
};
struct Band {
  std::vector<BandPart> parts;
};

Band band_of(const Taps& g, std::uint64_t m0, std::uint64_t m1);

// One K tile of a GEMM: K rows k0 .. k0 + kts - 1. On the taps path it is `taps` kernel taps
// from (ky, kx) on in K's (ky, kx, c) order, read from band image `img` at the anchor pixel
// (oy * s + ky, ox * s + kx). A tile of several taps' last channel chunk (C over the array's
// rows, tap_plan) holds `chans` channels of each: K rows k0 + i * C .. + chans - 1 for its
// i-th tap (0: its K rows are consecutive).
struct KTile {
  std::uint64_t k0, kts, ky, kx, img;
  std::uint64_t chans = 0;
  // K index of the tile's j-th row, over C input channels.
  std::uint64_t k_row(std::uint64_t j, std::uint64_t C) const {
    return chans == 0 ? k0 + j : k0 + j / chans * C + j % chans;
  }
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
  // Anchors stored densely, one UB row each in the order of the anchor grid (AnchorGrid), not
  // at their pixel's row of the padded grid: a strided conv's packed kernel rows then stream
  // consecutive UB rows (the space-to-depth layout), not every s-th.
  bool compact = false;
};

// The K tiles and band images of a tap-based conv.
struct TapPlan {
  std::vector<KTile> ktiles;
  std::vector<BandImage> images;
};

// How a grouped conv (C input and N output channels in `groups` groups of cg and ng) maps onto
// the array: its weight matrix (K = taps x C rows, N columns) is block-diagonal, so a weight tile
// holds the taps of `per_block` whole groups, rows their input channels and columns their output
// channels, zeros elsewhere: min(cw / cg, cw / ng) groups (at least 1, a group of more channels
// than the array being split into dense tiles), cw = min(array rows, cols). When every group fits
// one block (per_block == groups: C <= cw and N <= cw, and every dense conv) the conv takes
// the paths of a dense one with the zeros stored, each weight row feeding ng of its N columns.
// With several blocks, each N tile lies in one block and runs only the K tiles of its block's
// channels, one kernel tap each (tap-major: a 3x3 depthwise conv on 128 x 128 takes 9 tiles of
// 128 channels, not 10 of 9 taps x 14 channels, and its band is loaded once).
struct GroupMap {
  std::uint64_t groups = 1, cg = 0, ng = 0, per_block = 1, blocks = 1;
  // Input and output channels of block b (the last may hold fewer groups).
  std::uint64_t block_in(std::uint64_t b) const;
  std::uint64_t block_out(std::uint64_t b) const;
};
GroupMap group_map(std::uint64_t C, std::uint64_t N, std::uint64_t groups, std::uint64_t cw);
// Elements of the weight tiles stored in HBM: taps x each block's input x output channels.
std::uint64_t stored_weights(const GroupMap& gm, std::uint64_t taps);

// One N tile: output channels n0 .. n0 + nts - 1; each weight row of its tiles feeds
// nts / blocks of them (LOAD_WEIGHTS `blocks`, for the used-PE count).
struct NTile {
  std::uint64_t n0, nts, blocks;
};

// A grouped conv with several blocks on the taps path: N tiles of at most nw channels within
// one block; band images, one per channel chunk (at most cw) of each block (with `residues`,
// a strided conv's compact residue images per chunk, as tap_plan's); and K tiles N tile
// by N tile, KT each: (ky, kx, chunk) of the N tile's block, K indices in the dense
// (ky, kx, c) order over all C channels. Any other tap-based conv's plan has no N tiles of its
// own and KT = its K tiles, shared by every N tile.
struct GroupedPlan {
  TapPlan plan;
  std::vector<NTile> ntiles;
  std::uint64_t KT = 0;
};
GroupedPlan grouped_plan(const Taps& g, const GroupMap& gm, std::uint64_t cw, std::uint64_t nw,
                         bool residues);

// Kernel rows per tile when whole kernel rows are packed (several kernel_w * C runs per UB
// row, one DMA segment each), or 0 when that does not beat im2col or the input's pixels are
// not contiguous (Taps::contiguous: a kernel row is then no run). Per output pixel the array
// takes a cycle per weight tile, and the UB's DMA write port one per UB row the gather writes
// (the DMA fetches each HBM burst once per transfer, so the overlapping windows of a few
// channels cost bursts far below their segments; the rows remain; the vector unit writes the
// output rows on its own port), so the cost of a choice is the larger of the two, then the rows:
// ceil(kernel_h / n) tiles against the anchors per output pixel (1, or s when the tiles' first
// rows ky0 differ modulo s and every input row is an anchor row), and im2col's ceil(K / R)
// tiles against its ceil(K / R) rows. Packing must be strictly cheaper. Packed anchors are
// stored densely (BandImage::compact), so with every s-th anchor row a tile streams
// consecutive UB rows, as im2col's do: the 7x7 stride-2 RGB stem on 128 rows packs 4 kernel
// rows per tile (2 tiles, as im2col, against 1 row per pixel instead of 2); on 256 rows both
// take 1 tile and 1 row, and im2col stays.
std::uint64_t kernel_rows_per_tile(const Taps& g, std::uint64_t cw, std::uint64_t R);

// One K tile per (ky, kx, channel chunk of cw). Each chunk's tiles read its plain band or, with
// `residues` (bands loaded from HBM) at stride s > 1 and no dilation, min(s, kh) x min(s, kw)
// compact residue images: tile (ky, kx) reads anchors (oy * s + ky, ox * s + kx), every s-th
// row and column from (ky mod s, kx mod s), so the image of that residue holds just those
// pixels, densely, and every tile streams consecutive UB rows. A stride-s stream would cross
// the banks of the UB rows the DMA and the vector unit write one a cycle and wait whole for a
// window free of them (its burst needs every cycle's bank); a stride-1 stream keeps its
// distance. Together the residue images hold the band's pixels once (a resident input is read
// in place, strided).
// Packing (pack > 1 taps of the last channel chunk fit a tile: all C channels when C <= cw):
// whole kernel rows when that pays (kernel_rows_per_tile, for first layers with very few
// channels), else consecutive taps in (ky, kx) order share a tile while they are evenly spaced
// in HBM (a run along a kernel row, or, at stride 1, a pair that crosses to the next kernel
// row), because a DMA gathers them as segments at a fixed stride; tiles with the same shape of
// taps share a band image, at stride s > 1 only those whose taps agree modulo s, each image
// then holding only its anchors (every s-th row and column, BandImage::compact). With C > cw
// the full chunks keep one tap per tile (and their plain or residue images) and only the
// remainder's taps pack (48 channels on 32 rows: 25 tiles of 32 channels and 13 of two taps'
// 16, against 50 unpacked and 38 im2col).
TapPlan tap_plan(const Taps& g, std::uint64_t cw, std::uint64_t pack, std::uint64_t R,
                 bool residues);
// Channels of the last chunk of cw (the remainder, or cw when cw divides C): the ones a
// packed tile of tap_plan holds per tap.
std::uint64_t last_chunk(std::uint64_t C, std::uint64_t cw);

// The anchor pixels a packed or compact band image loads for one band part: rows y0 .. y1 (every
// ystep-th) and columns x0 .. x1 (every xstep-th) of the padded input, one UB row each.
struct AnchorGrid {
  std::uint64_t y0, y1, x0, x1;
  std::uint64_t rows, cols;  // anchor rows and anchors per row loaded
};
AnchorGrid anchor_grid(const Taps& g, const BandImage& im, const BandPart& part);

// Whether the DMA loads band image `im` of one band part in one transfer: a plain band, or a
// run of taps along a kernel row of all C channels (or one tap's anchors) from a tensor whose
// pixels hold just its channels (one segment of taps x C elements per anchor); otherwise (a
// remainder chunk's taps too) one transfer per anchor row (a segment per tap).
bool one_transfer(const Taps& g, const BandImage& im);
// The DMA transfers that load every band image of `plan` for output pixels [m0, m1) (each pays
// the memory's latency: an engine runs one transfer at a time).
std::uint64_t band_transfers(const Taps& g, const TapPlan& plan, std::uint64_t m0,
                             std::uint64_t m1);

// UB rows band image `im` takes for one band part: a compact image its anchors, any other the
// part's padded rows (Wp each; a packed one writes only its anchors, at their pixels' rows).
std::uint64_t image_rows(const Taps& g, const BandImage& im, const BandPart& part);

// Where the band images of `plan` lie in an input slot for `band`: image after image, each
// part after part, image_rows each; `rows` in all.
struct BandLayout {
  std::vector<std::uint64_t> off;  // image i's part p at off[i * parts + p]
  std::uint64_t parts = 0, rows = 0;
  std::uint64_t at(std::uint64_t img, std::uint64_t part) const { return off[img * parts + part]; }
};
BandLayout band_layout(const Taps& g, const TapPlan& plan, const Band& band);

// UB rows the DMA writes to load every band image of `plan` for output pixels [m0, m1): a plain
// image the band's whole padded rows, a packed one its anchors (each image loads the input
// again, through the UB's write ports).
std::uint64_t band_rows_written(const Taps& g, const TapPlan& plan, std::uint64_t m0,
                                std::uint64_t m1);

}  // namespace tpu
