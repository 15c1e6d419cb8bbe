#include "tools/compiler/gemm_tiling.h"

#include <algorithm>
#include <utility>

#include "sim/cycles.h"

namespace tpu {

std::vector<RowSeg> row_segments(std::uint64_t m0, std::uint64_t m1, std::uint64_t oh,
                                 std::uint64_t ow) {
  std::vector<RowSeg> segs;
  for (std::uint64_t m = m0; m < m1;) {
    const std::uint64_t b = m / (oh * ow), oy = (m / ow) % oh, ox = m % ow;
    const std::uint64_t n = std::min(ow - ox, m1 - m);
    segs.push_back({b, oy, ox, ox + n, m});
    m += n;
  }
  return segs;
}

Band band_of(const Taps& g, std::uint64_t m0, std::uint64_t m1) {
  Band band;
  for (const RowSeg& seg : row_segments(m0, m1, g.OH, g.OW)) {
    const std::uint64_t end = seg.oy * g.s + g.extent_h();  // one past the last row it reads
    if (!band.parts.empty() && band.parts.back().b == seg.b) {
      band.parts.back().rows = end - band.parts.back().iy0;
    } else {
      band.parts.push_back({seg.b, seg.oy * g.s, end - seg.oy * g.s});
    }
  }
  return band;
}

std::uint64_t kernel_rows_per_tile(const Taps& g, std::uint64_t cw, std::uint64_t R) {
  if (!g.contiguous) return 0;
  const std::uint64_t run = g.kw * g.C, most = std::min(cw / run, g.kh);
  // Per output pixel: array cycles (one per weight tile) against the UB rows the gather writes
  // (see gemm_tiling.h); at a tie, fewer rows (the DMA's slack). im2col has ceil(K / R) tiles
  // and as many gathered rows per pixel.
  auto cost = [](std::uint64_t tiles, std::uint64_t rows) {
    return std::pair(std::max(tiles, rows), rows);
  };
  const std::uint64_t im2col = ceil_div(g.kh * run, R);
  std::uint64_t best = 0;
  auto best_cost = cost(im2col, im2col);
  for (std::uint64_t n = 2; n <= most; ++n) {
    bool same_residue = true;
    for (std::uint64_t ky0 = 0; ky0 < g.kh; ky0 += n) same_residue = same_residue && ky0 % g.s == 0;
    // Anchors every s-th column; every s-th row only when all tiles' first rows agree modulo s.
    const auto c = cost(ceil_div(g.kh, n), same_residue ? 1 : g.s);
    if (c < best_cost) {
      best = n;
      best_cost = c;
    }
  }
  return best;
}

std::uint64_t last_chunk(std::uint64_t C, std::uint64_t cw) {
  return C - (ceil_div(C, cw) - 1) * cw;
}

namespace {

// The band images of one channel chunk when its tiles take one tap each: ry x rx of them, the
// plain band (1 x 1) or, split at stride s > 1 without dilation, min(s, kh) x min(s, kw)
// compact residue images, tap (ky, kx) reading the one of residue (ky mod s, kx mod s).
struct Residues {
  std::uint64_t ry = 1, rx = 1;
  std::uint64_t count() const { return ry * rx; }
  std::uint64_t of(std::uint64_t ky, std::uint64_t kx) const { return (ky % ry) * rx + kx % rx; }
};

Residues residues_of(const Taps& g, bool split) {
  if (!split || g.s < 2 || g.dh > 1 || g.dw > 1) return {};
  return {std::min(g.s, g.kh), std::min(g.s, g.kw)};
}

void push_chunk_images(const Taps& g, const Residues& r, std::uint64_t c0, std::uint64_t chans,
                       std::vector<BandImage>& images) {
  if (r.count() == 1) {
    images.push_back({1, 0, c0, chans, 0, 0, g.kh - 1, 0, g.kw - 1});
    return;
  }
  for (std::uint64_t y = 0; y < r.ry; ++y) {
    for (std::uint64_t x = 0; x < r.rx; ++x) {
      BandImage im{1, 0, c0, chans, 0, y, y + (g.kh - 1 - y) / g.s * g.s,
                   x, x + (g.kw - 1 - x) / g.s * g.s};
      im.ystep = im.xstep = g.s;
      im.compact = true;
      images.push_back(im);
    }
  }
}

// Tiles of up to `pack` >= 2 consecutive taps' channels c0 .. c0 + chans - 1 (the last channel
// chunk, see tap_plan), and their band images.
// A strided conv's tile (ky, kx) reads anchors (oy * s + ky, ox * s + kx): every s-th row and
// column from (ky mod s, kx mod s). A packed image loads only those, stored densely, so it
// writes about one UB row per output pixel (not one per input pixel) and a tile streams
// consecutive UB rows; tiles share an image only when their taps agree modulo s (a single
// tap's image too: the plain band would load every input pixel). Strided taps pack only along a
// kernel row (one transfer per band part, one_transfer): a pair crossing kernel rows would
// take a transfer per anchor row, each waiting for the memory.
void pack_taps(const Taps& g, std::uint64_t c0, std::uint64_t chans, std::uint64_t pack,
               TapPlan& plan) {
  const std::uint64_t taps = g.kh * g.kw, s = g.s;
  for (std::uint64_t a = 0; a < taps;) {
    const std::uint64_t ky = a / g.kw, kx = a % g.kw;
    std::uint64_t n = 1, dy = 0;
    std::int64_t dx = 0;
    if (a + 1 < taps && (s == 1 || (a + 1) % g.kw != 0)) {
      dy = (a + 1) / g.kw - ky;
      dx = std::int64_t((a + 1) % g.kw) - std::int64_t(kx);
      n = 2;
      while (n < pack && a + n < taps && (a + n) / g.kw - (a + n - 1) / g.kw == dy &&
             std::int64_t((a + n) % g.kw) - std::int64_t((a + n - 1) % g.kw) == dx) {
        ++n;
      }
    }
    if (n == 1) dx = 0;
    std::uint64_t img = 0;
    while (img < plan.images.size() &&
           !(plan.images[img].taps == n && plan.images[img].dy == dy &&
             plan.images[img].dx == dx && plan.images[img].c0 == c0 &&
             plan.images[img].ky_lo % s == ky % s && plan.images[img].kx_lo % s == kx % s)) {
      ++img;
    }
    if (img == plan.images.size()) {
      plan.images.push_back({n, dy, c0, chans, dx, ky, ky, kx, kx});
      if (s > 1) {
        plan.images.back().ystep = plan.images.back().xstep = s;
        plan.images.back().compact = true;
      }
    }
    BandImage& im = plan.images[img];
    im.ky_lo = std::min(im.ky_lo, ky);
    im.ky_hi = std::max(im.ky_hi, ky);
    im.kx_lo = std::min(im.kx_lo, kx);
    im.kx_hi = std::max(im.kx_hi, kx);
    plan.ktiles.push_back({a * g.C + c0, n * chans, ky, kx, img, chans < g.C ? chans : 0});
    a += n;
  }
}

}  // namespace

TapPlan tap_plan(const Taps& g, std::uint64_t cw, std::uint64_t pack, std::uint64_t R,
                 bool residues) {
  TapPlan plan;
  if (const std::uint64_t n = pack >= 2 ? kernel_rows_per_tile(g, cw, R) : 0; n > 0) {
    BandImage im{n, 1, 0, g.kw * g.C, 0, 0, 0, 0, 0};
    im.xstep = g.s;
    bool same_residue = true;
    for (std::uint64_t ky0 = 0; ky0 < g.kh; ky0 += n) {
      plan.ktiles.push_back({ky0 * g.kw * g.C, std::min(n, g.kh - ky0) * g.kw * g.C, ky0, 0, 0});
      im.ky_hi = ky0;
      same_residue = same_residue && ky0 % g.s == 0;
    }
    im.ystep = same_residue ? g.s : 1;
    im.compact = true;
    plan.images.push_back(im);
    return plan;
  }
  // One tap per tile for every chunk but a packed last one; those chunks' images are their
  // plain bands or, with `residues`, their residue images.
  const Residues r = residues_of(g, residues);
  const std::uint64_t chunks = ceil_div(g.C, cw) - (pack >= 2 ? 1 : 0);
  for (std::uint64_t cc = 0; cc < chunks; ++cc) {
    push_chunk_images(g, r, cc * cw, std::min(cw, g.C - cc * cw), plan.images);
  }
  for (std::uint64_t ky = 0; ky < g.kh; ++ky) {
    for (std::uint64_t kx = 0; kx < g.kw; ++kx) {
      for (std::uint64_t cc = 0; cc < chunks; ++cc) {
        const std::uint64_t img = cc * r.count() + r.of(ky, kx);
        plan.ktiles.push_back(
            {(ky * g.kw + kx) * g.C + cc * cw, plan.images[img].chans, ky, kx, img});
      }
    }
  }
  if (pack >= 2) pack_taps(g, chunks * cw, g.C - chunks * cw, pack, plan);
  return plan;
}

std::uint64_t GroupMap::block_in(std::uint64_t b) const {
  return std::min(per_block, groups - b * per_block) * cg;
}

std::uint64_t GroupMap::block_out(std::uint64_t b) const {
  return std::min(per_block, groups - b * per_block) * ng;
}

GroupMap group_map(std::uint64_t C, std::uint64_t N, std::uint64_t groups, std::uint64_t cw) {
  GroupMap gm;
  gm.groups = groups;
  gm.cg = C / groups;
  gm.ng = N / groups;
  gm.per_block = std::clamp<std::uint64_t>(std::min(cw / gm.cg, cw / gm.ng), 1, groups);
  gm.blocks = ceil_div(groups, gm.per_block);
  return gm;
}

std::uint64_t stored_weights(const GroupMap& gm, std::uint64_t taps) {
  std::uint64_t elements = 0;
  for (std::uint64_t b = 0; b < gm.blocks; ++b) elements += gm.block_in(b) * gm.block_out(b);
  return taps * elements;
}

GroupedPlan grouped_plan(const Taps& g, const GroupMap& gm, std::uint64_t cw, std::uint64_t nw,
                         bool residues) {
  GroupedPlan gp;
  const Residues r = residues_of(g, residues);
  // Every block has as many chunks: one when it holds several groups, else the group's.
  const std::uint64_t chunks = ceil_div(gm.block_in(0), cw);
  for (std::uint64_t b = 0; b < gm.blocks; ++b) {
    const std::uint64_t c0 = b * gm.per_block * gm.cg, n0 = b * gm.per_block * gm.ng;
    const std::uint64_t in = gm.block_in(b), out = gm.block_out(b);
    const std::uint64_t first_image = gp.plan.images.size();
    for (std::uint64_t lc = 0; lc < chunks; ++lc) {
      push_chunk_images(g, r, c0 + lc * cw, std::min(cw, in - lc * cw), gp.plan.images);
    }
    // A block of several groups is one N tile of block-diagonal weights; a group wider than
    // the array is a dense conv of its own.
    const std::uint64_t blocks = std::min(gm.per_block, gm.groups - b * gm.per_block);
    for (std::uint64_t o = 0; o < out; o += nw) {
      gp.ntiles.push_back({n0 + o, std::min(nw, out - o), blocks});
      for (std::uint64_t ky = 0; ky < g.kh; ++ky) {
        for (std::uint64_t kx = 0; kx < g.kw; ++kx) {
          for (std::uint64_t lc = 0; lc < chunks; ++lc) {
            const std::uint64_t img = first_image + lc * r.count() + r.of(ky, kx);
            const BandImage& im = gp.plan.images[img];
            gp.plan.ktiles.push_back({(ky * g.kw + kx) * g.C + im.c0, im.chans, ky, kx, img});
          }
        }
      }
    }
  }
  gp.KT = g.kh * g.kw * chunks;
  return gp;
}

AnchorGrid anchor_grid(const Taps& g, const BandImage& im, const BandPart& part) {
  AnchorGrid a;
  a.y0 = part.iy0 + im.ky_lo;
  a.y1 = part.iy0 + part.rows - g.kh + im.ky_hi;
  a.x0 = im.kx_lo;
  a.x1 = (g.OW - 1) * g.s + im.kx_hi;
  a.rows = (a.y1 - a.y0) / im.ystep + 1;
  a.cols = (a.x1 - a.x0) / im.xstep + 1;
  return a;
}

bool one_transfer(const Taps& g, const BandImage& im) {
  return (im.taps == 1 && !im.compact) ||
         (im.dy == 0 && (im.taps == 1 || (im.dx == 1 && im.chans == g.C)) && g.contiguous);
}

std::uint64_t band_transfers(const Taps& g, const TapPlan& plan, std::uint64_t m0,
                             std::uint64_t m1) {
  const Band band = band_of(g, m0, m1);
  std::uint64_t transfers = 0;
  for (const BandImage& im : plan.images) {
    for (const BandPart& part : band.parts) {
      transfers += one_transfer(g, im) ? 1 : anchor_grid(g, im, part).rows;
    }
  }
  return transfers;
}

std::uint64_t image_rows(const Taps& g, const BandImage& im, const BandPart& part) {
  if (!im.compact) return part.rows * g.Wp;
  const AnchorGrid a = anchor_grid(g, im, part);
  return a.rows * a.cols;
}

BandLayout band_layout(const Taps& g, const TapPlan& plan, const Band& band) {
  BandLayout l;
  l.parts = band.parts.size();
  for (const BandImage& im : plan.images) {
    for (const BandPart& part : band.parts) {
      l.off.push_back(l.rows);
      l.rows += image_rows(g, im, part);
    }
  }
  return l;
}

std::uint64_t band_rows_written(const Taps& g, const TapPlan& plan, std::uint64_t m0,
                                std::uint64_t m1) {
  const Band band = band_of(g, m0, m1);
  std::uint64_t rows = 0;
  for (const BandImage& im : plan.images) {
    for (const BandPart& part : band.parts) {
      if (im.taps == 1 && !im.compact) {
        rows += part.rows * g.Wp;
      } else {
        const AnchorGrid a = anchor_grid(g, im, part);
        rows += a.rows * a.cols;
      }
    }
  }
  return rows;
}

}  // namespace tpu
