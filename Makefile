# paradiff: the two commands a newcomer needs are `make demo` and `make test`; both install their
# Debian dependencies first (scripts/install-deps.sh).

BUILD_DIR ?= build
SANITIZE_DIR ?= build-sanitize
JOBS ?= $(shell nproc)
# CI treats warnings as errors.
WERROR := $(if $(CI),ON,OFF)
CMAKE_FLAGS ?=

.PHONY: all deps build test sanitize bench demo fuzz format clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/build.ninja: | deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DPARADIFF_ASSERTIONS=ON \
	  -DPARADIFF_WERROR=$(WERROR) $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Release build with assertions on, then every test (unit, fixture comparisons, MPI runs).
test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer. OpenMPI keeps some
# allocations until exit: tests/lsan.supp names its libraries, which full stack unwinding and
# kept-loaded MCA components make visible to the suppressions.
sanitize: deps
	cmake -S . -B $(SANITIZE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARADIFF_SANITIZE=ON \
	  -DPARADIFF_BUILD_BENCH=OFF -DPARADIFF_WERROR=$(WERROR) $(CMAKE_FLAGS)
	cmake --build $(SANITIZE_DIR) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  OMPI_MCA_mca_base_component_disable_dlclose=1 \
	  ctest --test-dir $(SANITIZE_DIR) --output-on-failure -j $(JOBS)

# Benchmarks print figures and ratios; they assert nothing.
bench: build
	@for b in $(BUILD_DIR)/bench/*_bench; do echo "== $$b"; $$b || exit 1; done

# The main job: text to image on 2 processes (Ulysses) with the bundled model -> out/demo.png.
demo: build
	scripts/demo.sh

# libFuzzer on the safetensors header parser, tokenizer.json, the precompiled charsmap and the
# tokenizers' text path (not part of `make test`); FUZZ_SECONDS bounds each target.
fuzz:
	@scripts/install-deps.sh fuzz
	scripts/fuzz.sh

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf $(BUILD_DIR) $(SANITIZE_DIR) build-fuzz
