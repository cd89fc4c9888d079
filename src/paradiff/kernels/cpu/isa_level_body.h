// Level body of the dispatch test hook (isa_dispatch.h): the level this variant was compiled for,
// read from the compiler's own macros, so a test can check that each level runs its own code.
CpuIsa compiled_isa() {
#if defined(__AVX512BF16__)
  return CpuIsa::Avx512Bf16;
#elif defined(__AVX512F__)
  return CpuIsa::Avx512;
#elif defined(__AVX2__)
  return CpuIsa::Avx2;
#else
  return CpuIsa::Portable;
#endif
}
