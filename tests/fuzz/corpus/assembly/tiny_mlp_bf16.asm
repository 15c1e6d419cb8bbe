# tpusim program (canonical form)
.dtype bf16
.array 8 8
.hbm 4352
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
.layer 0 fc1 dense 6600
.layer 1 fc2 dense 924
layer id=0
  dma.load hbm=0x1c0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  dma.load hbm=0x240 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  dma.load hbm=0x2c0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  dma.load hbm=0x0 ub=0 elems=50 pack=8 segs=1 seg_stride=0 groups=4 group_stride=100 ub_stride=7 signal=x_ready,first_input
  load.weights ub=0 rows=8 cols=8 fifo wait=first_input
  matmul ub=0 stride=7 rows=4 acc=0 wait=x_ready
  dma.load hbm=0x340 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=1 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0x3c0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=2 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0x440 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=3 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0x4c0 ub=0 elems=16 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=4 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0x4e0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=5 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0x560 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=2 cols=8 fifo
  matmul ub=6 stride=7 rows=4 acc=0 accumulate signal=acc_ready
  activate acc=0 rows=4 cols=8 ub=2048 func=relu multiplier=1 shift=0 zero_point=0 wait=acc_ready signal=acc_free
  dma.load hbm=0x5e0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=0 stride=7 rows=4 acc=4
  dma.load hbm=0x660 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=1 stride=7 rows=4 acc=4 accumulate
  dma.load hbm=0x6e0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=2 stride=7 rows=4 acc=4 accumulate
  dma.load hbm=0x760 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=3 stride=7 rows=4 acc=4 accumulate
  dma.load hbm=0x7e0 ub=0 elems=16 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=4 stride=7 rows=4 acc=4 accumulate
  dma.load hbm=0x800 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=5 stride=7 rows=4 acc=4 accumulate
  dma.load hbm=0x880 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=2 cols=8 fifo
  matmul ub=6 stride=7 rows=4 acc=4 accumulate signal=acc_ready_odd
  activate acc=4 rows=4 cols=8 ub=2052 func=relu multiplier=1 shift=0 zero_point=0 wait=acc_ready_odd signal=acc_free
  dma.load hbm=0x900 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=0 stride=7 rows=4 acc=0 wait=acc_free
  dma.load hbm=0x980 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=1 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0xa00 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=2 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0xa80 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=3 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0xb00 ub=0 elems=16 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=4 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0xb20 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=5 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0xba0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=2 cols=8 fifo
  matmul ub=6 stride=7 rows=4 acc=0 accumulate signal=acc_ready
  activate acc=0 rows=4 cols=8 ub=2056 func=relu multiplier=1 shift=0 zero_point=0 wait=acc_ready signal=acc_free
  dma.load hbm=0xc20 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=0 stride=7 rows=4 acc=4 wait=acc_free
  dma.load hbm=0xca0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=1 stride=7 rows=4 acc=4 accumulate
  dma.load hbm=0xd20 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=2 stride=7 rows=4 acc=4 accumulate
  dma.load hbm=0xda0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=3 stride=7 rows=4 acc=4 accumulate
  dma.load hbm=0xe20 ub=0 elems=16 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=4 stride=7 rows=4 acc=4 accumulate
  dma.load hbm=0xe40 ub=0 elems=8 pack=1 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=5 stride=7 rows=4 acc=4 accumulate
  dma.load hbm=0xe50 ub=0 elems=8 pack=1 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=2 cols=8 fifo
  matmul ub=6 stride=7 rows=4 acc=4 accumulate signal=acc_ready_odd
  activate acc=4 rows=4 cols=8 ub=2060 func=relu multiplier=1 shift=0 zero_point=0 wait=acc_ready_odd
  dma.load hbm=0xe60 ub=0 elems=8 pack=1 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=1 fifo
  matmul ub=0 stride=7 rows=4 acc=0 wait=acc_free
  dma.load hbm=0xe70 ub=0 elems=8 pack=1 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=1 fifo
  matmul ub=1 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0xe80 ub=0 elems=8 pack=1 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=1 fifo
  matmul ub=2 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0xe90 ub=0 elems=8 pack=1 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=1 fifo
  matmul ub=3 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0xea0 ub=0 elems=2 pack=1 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=1 fifo
  matmul ub=4 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0xec0 ub=0 elems=56 pack=7 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=1 fifo
  matmul ub=5 stride=7 rows=4 acc=0 accumulate
  dma.load hbm=0xf30 ub=0 elems=56 pack=7 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights signal=staging_free
  load.weights ub=0 rows=2 cols=1 fifo
  matmul ub=6 stride=7 rows=4 acc=0 accumulate signal=acc_ready
  activate acc=0 rows=4 cols=1 ub=2064 func=relu multiplier=1 shift=0 zero_point=0 wait=acc_ready signal=layer_done,input_ready
layer id=1
  dma.load hbm=0xfa0 ub=0 elems=56 pack=7 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights wait=layer_done
  load.weights ub=0 rows=8 cols=7 fifo wait=input_ready
  matmul ub=2048 stride=1 rows=4 acc=0
  dma.load hbm=0x1010 ub=0 elems=56 pack=7 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=7 fifo
  matmul ub=2052 stride=1 rows=4 acc=0 accumulate
  dma.load hbm=0x1080 ub=0 elems=7 pack=7 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  load.weights ub=0 rows=8 cols=7 fifo
  matmul ub=2056 stride=1 rows=4 acc=0 accumulate
  load.weights ub=0 rows=8 cols=7 fifo
  matmul ub=2060 stride=1 rows=4 acc=0 accumulate
  load.weights ub=0 rows=1 cols=7 fifo
  matmul ub=2064 stride=1 rows=4 acc=0 accumulate signal=acc_ready
  activate acc=0 rows=4 cols=7 ub=0 func=none multiplier=1 shift=0 zero_point=0 wait=acc_ready,staging_free signal=out_ready
  dma.store hbm=0x10c0 ub=0 elems=7 pack=7 segs=1 seg_stride=0 groups=4 group_stride=14 ub_stride=1 wait=out_ready
  halt
