# Every UDA method side by side on the demo's synthetic source and target (GNU make).
#
#   make compare                       # from the top-level Makefile
#   make -f bin/compare.mk [OUT=compare ROUNDS=4 ITERS=80]
#
# One shared source model, direct transfer and oracle (bin/uda.mk with its defaults), then
# one adaptation run per row with the SAME budget: ROUNDS rounds of ITERS optimizer steps
# (P x K = 16 x 4 images), each round features -> cluster -> finetune. Rows:
#   pseudo            CE + triplet on DBSCAN pseudo-labels (MMT's baseline), plain features
#   pseudo+camnorm    the same on camera-centred features (reid cluster --camera-norm)
#   mmt               Mutual Mean-Teaching (Ge et al. 2020); features of the two mean nets averaged
#   mmt+camnorm       MMT on camera-centred features (the clustering of pseudo+camnorm)
#   rbnet+mmt         RBNet source model (seed 000; --pose: the synthetic keypoints), then MMT
#   rbnet+mmt+camnorm the same on camera-centred features
#   kd                ULA label expansion (seed 003: Euclidean DBSCAN, templates, cosine 0.8) +
#                     KD weight blending every 5 epochs (5 epochs of ITERS/5 steps per round)
#   joint             labelled source + pseudo-labelled target together (seed 004's joint objective)
#   kd+camnorm, joint+camnorm   the same on camera-centred features
#   camstyle          seed 004 without clustering: `reid stylize fit --method color` on the target,
#                     `stylize apply` (every training image in every other camera), then ROUNDS
#                     rounds of `finetune --method camstyle --styled` (ITERS steps each, no cluster)
#   mar               soft multilabel adaptation (seed 001 / MAR), no clustering (each round is
#                     finetune alone): the source is the labelled reference set (uda.mk's REFERENCE
#                     defaults to SOURCE), its agents start as the source model's mean embedding of
#                     each source identity; MDL from a round's first step (--mdl-warmup-epochs 0:
#                     each round restarts MAR's soft-multilabel memory); P x K / 2 target and
#                     P x K / 2 reference images per step
# Opt-in (ROWS="... joint+styled"): joint with the styled images as positives of their pseudo-label.
# bin/compare_table.py prints one table: mAP, Rank-1, gap closed, CPU and wall time of the
# row's own stages, pseudo-label pair precision of the last round ("-" without clustering),
# and the load average.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DELETE_ON_ERROR:
.PHONY: compare table FORCE

OUT ?= compare
ROUNDS ?= 4
ITERS ?= 80
PYTHON ?= python
UDA = $(MAKE) --no-print-directory -f bin/uda.mk OUT=$(OUT) ROUNDS=$(ROUNDS) ITERS=$(ITERS)
RB_OUT := $(OUT)/rbnet
KD_EPS ?= auto
KD_ITERS := $(shell echo $$(( $(ITERS) / 5 )))
ROWS ?= pseudo pseudo+camnorm mmt mmt+camnorm rbnet+mmt rbnet+mmt+camnorm kd kd+camnorm joint joint+camnorm \
  camstyle mar

# per row: the uda.mk variables and the folder of its rounds
row_vars_pseudo = METHOD=pseudo RUN=pseudo CAMERA_NORM=0
row_vars_pseudo+camnorm = METHOD=pseudo RUN=pseudo+camnorm CAMERA_NORM=1
row_vars_mmt = METHOD=mmt RUN=mmt CAMERA_NORM=0
row_vars_mmt+camnorm = METHOD=mmt RUN=mmt+camnorm CAMERA_NORM=1
rbnet_source = OUT=$(RB_OUT) SOURCE=$(OUT)/data/market TARGET=$(OUT)/data/duke ARCH=rbnet \
  PRE_ARGS="--rb-backbone resnet18_half --pose $(OUT)/data/market/pose.h5"
row_vars_rbnet+mmt = $(rbnet_source) METHOD=mmt RUN=mmt CAMERA_NORM=0
row_vars_rbnet+mmt+camnorm = $(rbnet_source) METHOD=mmt RUN=mmt+camnorm CAMERA_NORM=1
# ULA at the demo's scale: Euclidean DBSCAN (eps auto: the rule follows the features' scale), the densest
# clusters kept as base classes (750 of Market's 12,936 images -> 59 of 1,024), cosine 0.8
row_vars_kd = METHOD=kd RUN=kd CAMERA_NORM=0 CLUSTER_METHOD=dbscan-euclidean EPS=$(KD_EPS) MIN_SAMPLES=4 \
  CLUSTER_ARGS="--expand-threshold 0.8 --keep-clusters 59" EPOCHS=5 ITERS=$(KD_ITERS) FT_ARGS="--kd-every 5"
row_vars_kd+camnorm = $(subst RUN=kd CAMERA_NORM=0,RUN=kd+camnorm CAMERA_NORM=1,$(row_vars_kd))
row_vars_joint = METHOD=joint RUN=joint CAMERA_NORM=0
row_vars_joint+camnorm = METHOD=joint RUN=joint+camnorm CAMERA_NORM=1
row_vars_mar = METHOD=mar RUN=mar CAMERA_NORM=0 FT_ARGS="--mdl-warmup-epochs 0"
row_vars_camstyle = METHOD=camstyle RUN=camstyle CAMERA_NORM=0
row_vars_joint+styled = METHOD=joint RUN=joint+styled CAMERA_NORM=0 STYLE=1
row_dir = $(if $(filter rbnet+%,$(1)),$(RB_OUT)/$(patsubst rbnet+%,%,$(1)),$(OUT)/$(1))
row_direct = $(if $(filter rbnet+%,$(1)),$(RB_OUT)/direct.json,$(OUT)/direct.json)

compare table: $(OUT)/table.txt
	@cat $<

$(OUT)/base.time.json:
	bin/run-timed $@ -- $(UDA) $(OUT)/direct.json $(OUT)/oracle.json

define ROW
$(call row_dir,$(1))/row.time.json: $(OUT)/base.time.json
	@mkdir -p $$(@D)
	bin/run-timed $$@ -- $(UDA) $(row_vars_$(1)) $(foreach i,$(shell seq 1 $(ROUNDS)),$(call row_dir,$(1))/r$(i).json) \
	  $(call row_direct,$(1))
endef
$(foreach r,$(ROWS),$(eval $(call ROW,$(r))))

$(OUT)/table.txt: $(foreach r,$(ROWS),$(call row_dir,$(r))/row.time.json)
	$(PYTHON) bin/compare_table.py --out $(OUT) --rounds $(ROUNDS) $(foreach r,$(ROWS),--row "$(r)=$(call row_dir,$(r))=$(call row_direct,$(r))") > $@
