"""The NumPy backend: kernels, BLAS gemm, fused elementwise blocks and chunked loop groups."""
