"""The CuPy backend: generated CUDA, launch planning, cuBLAS/cuSOLVER, the GPU Executable."""
