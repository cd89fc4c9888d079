# Instruction-set variants of the CPU kernels (core/cpu_isa.h selects one at run time).
#
#   paradiff_isa_source(<file> <isa>)
#
# compiles one source file for one level, whatever the rest of the build targets: a later -march
# replaces the global one (-march=native or the compiler's default), so an "avx2" file holds no
# AVX-512 instruction even on an AVX-512 build machine, and an "avx512" file holds AVX-512 code even
# in a build for an older baseline. A variant file must keep everything it defines out of reach of
# the other variants (its own namespace, or internal linkage): an inline function compiled for
# AVX-512 in one file and for AVX2 in another would be merged by the linker into one of the two.
set(PARADIFF_ISA_FLAGS_avx2 -march=x86-64-v3)
set(PARADIFF_ISA_FLAGS_avx512 -march=x86-64-v4)
set(PARADIFF_ISA_FLAGS_avx512_bf16 -march=x86-64-v4 -mavx512bf16)
if(PARADIFF_NATIVE)
  set(PARADIFF_ISA_TUNE -mtune=native)
else()
  set(PARADIFF_ISA_TUNE -mtune=generic)
endif()

function(paradiff_isa_source file isa)
  if(NOT DEFINED PARADIFF_ISA_FLAGS_${isa})
    message(FATAL_ERROR "paradiff_isa_source: unknown level '${isa}' for ${file}")
  endif()
  set_property(SOURCE ${file} APPEND PROPERTY COMPILE_OPTIONS ${PARADIFF_ISA_FLAGS_${isa}}
                                                              ${PARADIFF_ISA_TUNE})
endfunction()

# The variant files (paths under src/paradiff/).
set(kernel_dir ${PROJECT_SOURCE_DIR}/src/paradiff/kernels/cpu)

# bf16 stored, fp32 computed (kernels/gemm_mode.h): the widening and few-row loops of
# cpu/bf16_stored_weights.cc, one file per level (body: cpu/bf16_rows_body.h).
paradiff_isa_source(${kernel_dir}/bf16_rows_avx2.cc avx2)
paradiff_isa_source(${kernel_dir}/bf16_rows_avx512.cc avx512)
