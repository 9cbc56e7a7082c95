# Shared rules of Atoll's C examples, in the shape of Microkit's example Makefiles: the
# caller sets BUILD_DIR, MICROKIT_SDK, MICROKIT_BOARD and MICROKIT_CONFIG (and LLVM=True to
# build with clang and ld.lld); the example sets PROGRAMS (one <name>.c each) and SYSTEM.

ifeq ($(strip $(BUILD_DIR)),)
$(error BUILD_DIR must be specified)
endif
ifeq ($(strip $(MICROKIT_SDK)),)
$(error MICROKIT_SDK must be specified)
endif
ifeq ($(strip $(MICROKIT_BOARD)),)
$(error MICROKIT_BOARD must be specified)
endif
ifeq ($(strip $(MICROKIT_CONFIG)),)
$(error MICROKIT_CONFIG must be specified)
endif

BOARD_DIR := $(MICROKIT_SDK)/board/$(MICROKIT_BOARD)/$(MICROKIT_CONFIG)
ARCH := $(shell grep 'CONFIG_SEL4_ARCH  ' $(BOARD_DIR)/include/kernel/gen_config.h | cut -d' ' -f4)
ifneq ($(ARCH),aarch64)
$(error $(BOARD_DIR) is not an aarch64 board of the SDK)
endif

ifeq ($(strip $(LLVM)),True)
CC := clang -target aarch64-none-elf
LD := ld.lld
else
CC := aarch64-none-elf-gcc
LD := aarch64-none-elf-ld
endif

MICROKIT_TOOL ?= $(MICROKIT_SDK)/bin/microkit
CFLAGS := -nostdlib -ffreestanding -g -O2 -Wall -Wextra -Werror -mstrict-align -I$(BOARD_DIR)/include
LDFLAGS := -L$(BOARD_DIR)/lib
LIBS := -lmicrokit -Tmicrokit.ld

IMAGE_FILE := $(BUILD_DIR)/loader.img
REPORT_FILE := $(BUILD_DIR)/report.txt
ELFS := $(addprefix $(BUILD_DIR)/,$(addsuffix .elf,$(PROGRAMS)))

all: $(IMAGE_FILE)

$(BUILD_DIR):
	mkdir -p $@

$(BUILD_DIR)/%.o: %.c $(wildcard *.h) Makefile | $(BUILD_DIR)
	$(CC) -c $(CFLAGS) $< -o $@

$(BUILD_DIR)/%.elf: $(BUILD_DIR)/%.o
	$(LD) $(LDFLAGS) $^ $(LIBS) -o $@

$(IMAGE_FILE) $(REPORT_FILE): $(ELFS) $(SYSTEM)
	$(MICROKIT_TOOL) $(SYSTEM) --search-path $(BUILD_DIR) --board $(MICROKIT_BOARD) --config $(MICROKIT_CONFIG) -o $(IMAGE_FILE) -r $(REPORT_FILE)

clean:
	rm -rf $(BUILD_DIR)

.PHONY: all clean
