# Every dependency comes from Debian's packages; scripts/install-deps.sh installs them.
# Each find fails early with the package to install.

function(paradiff_require found what package)
  if(NOT ${found})
    message(FATAL_ERROR "paradiff needs ${what}: install the Debian package '${package}' "
                        "(or run scripts/install-deps.sh)")
  endif()
endfunction()

find_package(OpenMP)
paradiff_require(OpenMP_CXX_FOUND "OpenMP" "libgomp1 (with g++)")

find_library(DNNL_LIBRARY NAMES dnnl)
find_path(DNNL_INCLUDE_DIR NAMES oneapi/dnnl/dnnl.hpp)
if(DNNL_LIBRARY AND DNNL_INCLUDE_DIR)
  set(DNNL_FOUND TRUE)
endif()
paradiff_require(DNNL_FOUND "oneDNN" "libdnnl-dev")
add_library(DNNL::dnnl UNKNOWN IMPORTED)
set_target_properties(DNNL::dnnl PROPERTIES IMPORTED_LOCATION ${DNNL_LIBRARY}
                                            INTERFACE_INCLUDE_DIRECTORIES ${DNNL_INCLUDE_DIR})

find_package(nlohmann_json 3 QUIET)
paradiff_require(nlohmann_json_FOUND "nlohmann-json" "nlohmann-json3-dev")

if(PARADIFF_BUILD_TESTS)
  find_package(GTest QUIET)
  paradiff_require(GTest_FOUND "GoogleTest" "libgtest-dev")
endif()
if(PARADIFF_BUILD_BENCH)
  find_package(benchmark QUIET)
  paradiff_require(benchmark_FOUND "Google Benchmark" "libbenchmark-dev")
endif()

find_package(MPI COMPONENTS CXX QUIET)
paradiff_require(MPI_CXX_FOUND "MPI (OpenMPI)" "libopenmpi-dev")
find_program(MPIEXEC_EXECUTABLE NAMES mpirun mpiexec)

# The text encoders' tokenizers: SentencePiece runs T5's spiece.model; ICU gives CLIP's
# tokenizer its Unicode data (NFC, lowercase, letter/number/whitespace classes).
find_library(SENTENCEPIECE_LIBRARY NAMES sentencepiece)
find_path(SENTENCEPIECE_INCLUDE_DIR NAMES sentencepiece_processor.h)
if(SENTENCEPIECE_LIBRARY AND SENTENCEPIECE_INCLUDE_DIR)
  set(SENTENCEPIECE_FOUND TRUE)
endif()
paradiff_require(SENTENCEPIECE_FOUND "SentencePiece" "libsentencepiece-dev")
add_library(SentencePiece::sentencepiece UNKNOWN IMPORTED)
set_target_properties(SentencePiece::sentencepiece PROPERTIES
                      IMPORTED_LOCATION ${SENTENCEPIECE_LIBRARY}
                      INTERFACE_INCLUDE_DIRECTORIES ${SENTENCEPIECE_INCLUDE_DIR})

find_package(ICU COMPONENTS uc data QUIET)
paradiff_require(ICU_FOUND "ICU" "libicu-dev")

find_package(PNG QUIET)
paradiff_require(PNG_FOUND "libpng" "libpng-dev")

# paradiff serve's HTTP server. Debian's cpp-httplib is a compiled library (libcpp-httplib.so)
# whose header declares classes whose layout depends on the package's build flags
# (CPPHTTPLIB_OPENSSL/ZLIB/BROTLI_SUPPORT): pkg-config gives those flags, so users of the header
# must take them from the imported target.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(HTTPLIB QUIET IMPORTED_TARGET cpp-httplib)
endif()
paradiff_require(HTTPLIB_FOUND "cpp-httplib" "libcpp-httplib-dev")
