# tpusim program (canonical form)
.dtype int8
.array 8 8
.hbm 2304
.sem 0 x_ready
.sem 1 x_free
.sem 2 w_ready
.sem 3 w_free
.sem 4 acc_ready
.sem 5 acc_free
.sem 6 out_ready
.sem 7 out_free
.sem 8 pool_ready
.sem 9 pool_free
.sem 10 layer_done
.sem 11 acc_ready_odd
.sem 12 staging_free
.sem 13 input_ready
.sem 14 border_ready
.sem 15 first_input
.layer 0 gemm matmul 19200
layer id=0
  dma.load hbm=0x340 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  dma.load hbm=0x380 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  dma.load hbm=0x3c0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  dma.load hbm=0x0 ub=0 elems=40 pack=8 segs=1 seg_stride=0 groups=20 group_stride=40 ub_stride=5 signal=x_ready,first_input
  load.weights ub=0 rows=8 cols=8 fifo wait=first_input
  matmul ub=0 stride=5 rows=20 acc=0 wait=x_ready
  dma.load hbm=0x400 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=1 stride=5 rows=20 acc=0 accumulate
  dma.load hbm=0x440 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=2 stride=5 rows=20 acc=0 accumulate
  dma.load hbm=0x480 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=3 stride=5 rows=20 acc=0 accumulate
  dma.load hbm=0x4c0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=4 stride=5 rows=20 acc=0 accumulate signal=acc_ready
  activate acc=0 rows=20 cols=8 ub=200 func=none multiplier=27891 shift=23 zero_point=0 wait=acc_ready signal=acc_free,out_ready
  dma.load hbm=0x500 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=0 stride=5 rows=20 acc=20
  dma.load hbm=0x540 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=1 stride=5 rows=20 acc=20 accumulate
  dma.load hbm=0x580 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=2 stride=5 rows=20 acc=20 accumulate
  dma.load hbm=0x5c0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=3 stride=5 rows=20 acc=20 accumulate
  dma.load hbm=0x600 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=4 stride=5 rows=20 acc=20 accumulate signal=acc_ready_odd
  activate acc=20 rows=20 cols=8 ub=220 func=none multiplier=27891 shift=23 zero_point=0 wait=acc_ready_odd signal=out_ready
  dma.load hbm=0x640 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  dma.store hbm=0x700 ub=200 elems=8 pack=8 segs=1 seg_stride=0 groups=20 group_stride=24 ub_stride=1 wait=out_ready signal=out_free
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=0 stride=5 rows=20 acc=0 wait=acc_free
  dma.load hbm=0x680 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=1 stride=5 rows=20 acc=0 accumulate
  dma.load hbm=0x6c0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=2 stride=5 rows=20 acc=0 accumulate
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=3 stride=5 rows=20 acc=0 accumulate
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=4 stride=5 rows=20 acc=0 accumulate signal=acc_ready
  activate acc=0 rows=20 cols=8 ub=200 func=none multiplier=27891 shift=23 zero_point=0 wait=acc_ready,out_free signal=out_ready
  dma.store hbm=0x708 ub=220 elems=8 pack=8 segs=1 seg_stride=0 groups=20 group_stride=24 ub_stride=1 wait=out_ready
  dma.store hbm=0x710 ub=200 elems=8 pack=8 segs=1 seg_stride=0 groups=20 group_stride=24 ub_stride=1 wait=out_ready
  halt
