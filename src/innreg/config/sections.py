"""The four sections of a run's settings (``model``, ``loss``, ``train``, ``refine``), with what each
default was measured on; :func:`innreg.config.build.build_section` builds one from a (partial) mapping and checks it.
"""

from __future__ import annotations

from dataclasses import dataclass

from innreg.core.enums import (
    DistilTarget,
    FineUpdate,
    LrSchedule,
    Precision,
    RefineInit,
    RegInput,
    RegLossKind,
    SqueezeKind,
    SubnetKind,
    TranslatorKind,
)


@dataclass
class ModelConfig:
    """Networks. Defaults are sized so a 2-core CPU trains a useful 2D model in minutes."""

    dim: int = 2
    translator: TranslatorKind = TranslatorKind.INN
    inn_blocks: int = 4
    inn_hidden: int = 32
    # Zero channels the INN carries beside the image and drops at the output (an augmented flow; the
    # released INNReg code's blocks also run on two channels); 0 = the paper's exact image-to-image
    # inverse. 1 (RESULTS.md section 16; 2D, two sets, one held out): translated NCC with the truth
    # +0.16 / +0.03, the checkerboard below the moving image's noise (|HH| 0.075 -> 0.005 and 0.049 ->
    # 0.007), the inverse's NCC +0.03 / +0.01, the network alone +0.03 / +0.02; the full pipeline's Dice
    # -0.0025 / -0.001, the same speed.
    # 3D keeps 0 (not measured there; Config.sized_for).
    inn_latent: int = 1
    subnet: SubnetKind = SubnetKind.DDC
    ddc_kernel: int = 5
    clamp: float = 1.5
    # Haar bands: translation NCC 0.550 vs 0.444 for the cell squeeze (fresh translators, same stages,
    # whole-head PD -> T1 tune set), same Dice within 0.002.
    squeeze: SqueezeKind = SqueezeKind.HAAR
    # Backprop through the INN without storing its activations (rebuilt with the exact inverse).
    memory_efficient: bool = True
    resnet_channels: int = 32
    resnet_blocks: int = 6
    unet_encoder: tuple[int, ...] = (16, 32, 32, 32)
    unet_decoder: tuple[int, ...] = (32, 32, 32, 32, 16)
    diffeomorphic: bool = True
    # Global affine stage before the U-Net (large rotations/scalings/shifts); off = the paper's net.
    affine: bool = True
    # The affine stage's head (innreg.nn.affine.AffineNet): features pooled to affine_pool cells per
    # axis (1 = global average, the design before these keys, which model files without them load),
    # then a hidden layer of affine_hidden units (0 = linear).
    affine_pool: int = 4
    affine_hidden: int = 64
    # Negative slope of that hidden layer's leaky ReLU. 0 (a plain ReLU, model files before this key)
    # let every hidden unit die in the joint steps of two of three default trainings on one PD -> T1 set:
    # the affine stage then gave one map for every pair, the network alone 0.55 (live: 0.68). With 0.2
    # the same set and seed gave 0.632, two fresh sets 0.667 / 0.693, all heads live (RESULTS.md 10).
    affine_slope: float = 0.2
    int_steps: int = 7
    # U-Net passes of the registration network: each pass after the first registers the moving image
    # warped by the passes before it (innreg.nn.registration.RegistrationNet); 1 = the paper's network.
    # 2 (RESULTS.md section 6, last part): the network alone +0.025 to +0.048 Dice over four two-pass
    # models on two sets (most, +0.048, trained with it from the first step), the full pipeline (which
    # starts from the affine stage) unchanged, training ~7 % longer; at the demo's short budget +0.025
    # (0.488 -> 0.513, same code).
    cascades: int = 2
    reg_input: RegInput = RegInput.TRANSLATED
    # The refinement's guide: ``none`` = the translator's translation guides it (the method as before);
    # ``unet`` (or another kind) = a second, separate translator of that kind, trained by the translator
    # stages alone (train.translator_rounds), whose translation the refinement matches instead, while
    # the translator stays the network's input, trained jointly only. See innreg.translation_training.
    # Measured (benchmarks/RESULTS.md 2f, on trained default models): a U-Net guide moved Dice by -0.004
    # to +0.007 on five sets; on CT -> T1 (one set) a ResNet guide trained by the stages (2 x 500 steps,
    # an hour on one core) added 0.025 (0.036 over --no-translate), the "w/o INN" run's ResNet 0.040,
    # each at 2-3x the registration time, but 2 x 300 steps of it lost 0.009 on the PD -> T1 tune set
    # and 0.001 on T2 -> T1. Hence not the default.
    guide: TranslatorKind = TranslatorKind.NONE
    # A 3D model's guide as a 2D translator run on every slice across the last axis (innreg.nn.slicewise),
    # built with the other model keys at dim 2. The 3D CPU default with ``guide: inn`` (Config.sized_for).
    guide_slices: bool = False
    # The networks run on images downsampled by this factor (trained so, and at registration their
    # fields are upsampled to the full grid): 8x less work per step in 3D at factor 2.
    input_factor: int = 1
    # CT in Hounsfield units (an image whose 1st percentile is at or below -500) mapped to [0, 1] by a
    # soft-tissue curve (innreg.data.intensity.HU_CURVE_KNOTS) instead of its percentiles, for the networks
    # and the refinement alike; MR and windowed CT are unaffected. Measured on a fresh CT -> T1 set in HU,
    # trained both ways from the start (benchmarks/RESULTS.md section 32): the network alone 0.580 -> 0.740
    # Dice (10 of 10 pairs), the translation's NCC with the truth 0.584 -> 0.851, the full pipeline 0.825 ->
    # 0.830 (8 of 10); --no-translate 0.792 -> 0.778 (MIND of the curve is worse). False in files of older innreg.
    hu_curve: bool = True


@dataclass
class LossConfig:
    """Loss terms of ``L = L_trans + lambda_reg * L_reg``.

    ``L_trans = w_adv * LSGAN(T(A)) + w_l1 * (|warp(T(A)) - B| + |warp(A) - T^-1(B)|)`` and
    ``L_reg = w_sim * similarity(warp(A), B) + w_smooth * |grad u|^2``, where the similarity is the NMI
    barrier or plain NMI (see :class:`RegLossKind`). With ``w_sim = 0`` registration is driven by the
    L1 term alone (RegGAN's "correction" loss).
    """

    reg_loss: RegLossKind = RegLossKind.BARRIER
    tau: float = 0.0
    barrier_eps: float = 0.01
    nmi_bins: int = 32
    # NMI is averaged over this many pyramid levels (full, 1/2, 1/4, ...): the coarse levels widen
    # the capture range for large misalignments.
    nmi_scales: int = 3
    lambda_reg: float = 1.0
    w_sim: float = 1.0
    # The paper's LSGAN term against a PatchGAN critic (0.1 here until 2026-12-02; the authors' released
    # code computes none). Off by default (RESULTS.md section 7): the critic wins against the smooth
    # translations of noisy scans; on a fresh PD -> T1 set the default training then diverged (the
    # translator's output grew to +-300, the NMI's histogram collapsed, NaN at step 299), on a T2 set
    # the translator stages degraded its translation below the untranslated floor. Without it both
    # trained cleanly, and faster (no critic to run); the demo's short run lost translated NCC (0.687 ->
    # 0.603), not Dice. train.disc_blur keeps the critic, blind to noise.
    w_adv: float = 0.0
    w_l1: float = 1.0
    w_smooth: float = 1.0


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping."""

    steps: int = 1200
    batch_size: int = 2
    # A higher rate than the authors' 2e-4 / (0.5, 0.999): with a CPU-sized budget of ~1000 steps the
    # registration network otherwise stays far from converged (measured on the phantom, see RESULTS.md).
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 10.0
    seed: int = 0
    device: str = "auto"
    augment: bool = True
    checkpoint_every: int = 100
    # Autocast of the networks' forward passes in the joint steps, the translator stages and the distillation.
    precision: Precision = Precision.FP32
    # Worker processes preparing the next steps' batches (loading, slicing, the random deformation) while
    # a step runs; 0 = in the training process. The batches are the same either way; the pairs are loaded
    # once, before the workers start, and shared with them (one copy in memory). 0 on a CPU, where
    # the workers would take the step's cores; 4 on a GPU (Config.sized_for), where the CPU-side
    # augmentation of a 3D volume took 2.2 s of a 3.1 s step on an H200 (RESULTS.md section 20).
    data_workers: int = 0
    # 2D training from 3D volumes: axis and fraction of central slices to draw from.
    slice_axis: int = 2
    slice_range: tuple[float, float] = (0.3, 0.7)
    # The LSGAN patch discriminator exists only while training, so its size lives here, not in model.
    disc_channels: int = 32
    disc_layers: int = 3
    # Gaussian sigma (voxels) of the smoothing the critic sees both images through (PatchDiscriminator
    # blur_sigma): 0 = the paper's critic. Against noisy real images a sharp critic can teach the
    # translator a speckled texture (RESULTS.md section 7).
    disc_blur: float = 0.0
    # After the joint training: alternating rounds of (align the training pairs with the refinement,
    # train the translator alone on the aligned pairs for translator_steps steps, at most steps); 0 = off.
    # See innreg.translation_training.
    # Three rounds against two (RESULTS.md sections 35-36): the translator had not finished learning in
    # two. Redone on five runs, translated NCC with moving_as_fixed +0.006 to +0.09 and Dice +0.001 to
    # +0.005; end to end on the fresh PD -> T1 set 158, NCC 0.663 -> 0.764, Dice 0.863 -> 0.865 (8 of 10
    # pairs higher); about 5 minutes more a 2D training on one core. A fourth did not gain (section 36).
    translator_rounds: int = 3
    # 2 x 1000 steps against 2 x 300 (fresh Haar translators, RESULTS.md section 2b): NCC with
    # moving_as_fixed 0.550 -> 0.734 on the PD -> T1 tune set and 0.693 -> 0.826 on the held-out
    # T2 -> T1 set, Dice the same (0.849 / 0.854); about 0.4-0.5 s a step on one core.
    translator_steps: int = 1000
    # Measured on the whole-head PD -> T1 tune set: 3e-3 reached NCC 0.521 with moving_as_fixed
    # where the joint rate 1e-3 (and 2 x 200 steps) reached 0.462 (untranslated floor 0.501).
    translator_lr: float = 3e-3
    # The rate of those steps for a separate guide (model.guide) instead: on the tune set a U-Net guide
    # trained at 3e-3 stayed below the untranslated floor (NCC 0.425 vs 0.498); 1e-3 is the rate at
    # which a U-Net reached NCC 0.85 there (benchmarks/RESULTS.md sections 2e, 2f). The ResNet guide
    # probes ran at 3e-3, the ResNet's rate in the "w/o INN" run, and 3D on a CPU trains its slice-wise
    # INN guide at 3e-3, the INN's translator_lr (Config.sized_for).
    guide_lr: float = 1e-3
    # Random crops of at most this many voxels per axis for those steps (0 = whole images); a translator
    # that is not local (the ResNet's instance norm) always trains on whole images.
    translator_crop: int = 96
    # Weight of the L1's inverse direction |A' - T^-1(B)| in those steps (1 = the paper's symmetric L1,
    # as in the joint training). Against a noisy fixed image it teaches T^-1 to denoise and so T to
    # amplify the moving image's noise (innreg.translation_training). The stages redone from the joint
    # steps of three held-out runs (RESULTS.md section 8): 0 gives clean translations (checkerboard
    # |HH| 0.065 -> 0.008 on T2, NCC with the truth 0.670 -> 0.832), the same Dice, but an inverse that
    # no longer translates back (NCC 0.80 -> 0.01, outputs up to 1e4-1e5); 0.1 and 0.3 sit between. The
    # pipeline uses only T; 1 stays the default so the INN remains the paper's two-way translator.
    translator_inverse_l1: float = 1.0
    # Gaussian s.d. (voxels of the working grid) by which the fixed image is smoothed before T^-1 in
    # that inverse term, |A' - T^-1(G * B)|: T^-1 meets less noise it would learn to remove, so T need
    # amplify the moving image's less (innreg.translation_training); 0 = the paper's term. Measured on a
    # T2 -> T1 run (RESULTS.md section 15): 1 voxel lowers the checkerboard |HH| 0.075 -> 0.042 and
    # raises the NCC with the truth 0.638 -> 0.707, Dice the same, the inverse's NCC 0.79 -> 0.71; held
    # out on FLAIR |HH| 0.049 -> 0.039, NCC 0.860 -> 0.852. The texture stays 2.5-3.5x the moving image's
    # noise, so 0 stays the default.
    translator_inverse_smoothing: float = 0.0
    # Coefficient range of a random quadratic log-bias field (innreg.data.bias_field, as the phantom
    # draws with its default 0.3) multiplied onto the aligned moving image of every batch item in those
    # steps; 0 = none. A translator that reads a tissue from its brightness turns a bright bias patch
    # of one tissue into another tissue's translation (RESULTS.md section 34); with the field it must read
    # the neighbourhood instead. Redone stages of two PD -> T1 runs (section 35): at 0.3 the spread inside
    # white matter falls to the truth's, Dice +0.002 (held out) / -0.003 (tune) at the default weights and
    # +0.004 / +0.005 at refine.translation_weight 10 (0.6: +0.003 / +0.007), still under the perfect
    # translation; 0 stays the default.
    translator_bias: float = 0.0
    # Then: steps fine-tuning the registration network (affine stage and U-Net) towards the refinement's
    # affine maps and fields of augmented training pairs (innreg.distillation); 0 = off. About 0.4 s a
    # step on one core at 224x192; at most 2 x train.steps (innreg.distillation.distillation_steps).
    # Measured on the whole-head PD -> T1 tune set (RESULTS.md section 6): the network alone 0.475 ->
    # 0.511 Dice after 1000 steps (500-step joint base); from the default model's translator stages
    # 0.547 after 1000 and 0.592 after 2000 (0.589 with a cosine rate), the refined result unchanged
    # (0.850). Off in 3D on a GPU; 3D on a CPU distils the affine maps alone (Config.sized_for).
    distil_steps: int = 2000
    # Weight of the joint training's similarity (loss.reg_loss, NMI of the warped raw moving image) in
    # the distillation's loss, beside the squared distances to the targets; 0 = targets only. Measured
    # (2000 steps from the same stages, RESULTS.md section 6): the network alone 0.592 -> 0.613 on the
    # PD -> T1 tune set (300: 0.591, rougher fields), then held out 0.630 -> 0.650 (PD, seed 71) and
    # 0.613 -> 0.623 (T2 coronal, seed 72); the full pipeline unchanged.
    distil_similarity: float = 30.0
    # The distillation's targets (innreg.core.enums.DistilTarget): the refined affine map and field, or
    # the affine map alone (the affine stage alone learns).
    distil_target: DistilTarget = DistilTarget.FIELD
    # The learning rate over the translator stages' and the distillation's steps (each round of the
    # stages decays on its own). Cosine against constant, the same 500-step joint base, 2 x 1000 stage
    # and 1000 distillation steps (benchmarks/RESULTS.md section 6): the network alone 0.513 -> 0.526
    # on the PD -> T1 tune set and 0.564 -> 0.576 on held-out PD -> T1 at 0.88 mm (seed 66), the full
    # pipeline the same (0.848 / 0.866), translated NCC +0.064 / -0.065 (its run-to-run spread). The joint
    # training keeps its rate: a resumed run may raise train.steps. But in the demo (2 x 300 stage steps)
    # cosine dropped the NCC 0.688 -> 0.407 and Dice 0.873 -> 0.867, and over 2000 distillation steps
    # alone it gained nothing (0.589 vs 0.592, tune set): constant stays the default.
    stage_lr_schedule: LrSchedule = LrSchedule.CONSTANT


@dataclass
class RefineConfig:
    """Test-time refinement of the network's field for each pair (see :mod:`innreg.refinement`).

    Not part of the paper: the network's output (see ``init``) is the start of a short instance
    optimisation, an affine Gauss-Newton correction and then log-domain demons on a stationary
    velocity field, both matching MIND descriptors on a coarse-to-fine pyramid. ``enabled: false``
    registers with the network alone, as the paper does. Defaults were chosen on phantom T2, CT, PD
    and FLAIR slices and checked on a held-out T2 sagittal set (``benchmarks/RESULTS.md``).
    """

    enabled: bool = True
    # Measured on the phantom (RESULTS.md): after a CPU-sized training run, starting from the affine
    # stage beats starting from the full field, whose local errors the refinement does not undo.
    init: RefineInit = RefineInit.AFFINE
    # Affine correction first (capture range): downsampling factors and Gauss-Newton steps per level.
    # 2D: (3, 2) and demons steps (5, 5, 10, 5) kept Dice of (6, 3) and (20, 15, 10, 5) within 0.0005 on
    # two PD -> T1 sets for about 15 % of a pair's seconds; --no-translate lost 0.003-0.005 with them (the
    # translated channel is what lets the coarse levels converge in a few steps; benchmarks/RESULTS.md
    # section 39). 3D keeps its own schedule (Config.sized_for).
    affine_factors: tuple[int, ...] = (8, 4)
    affine_steps: tuple[int, ...] = (3, 2)
    # Levenberg-Marquardt damping of the affine steps, as a fraction of the normal matrix' diagonal.
    affine_damping: float = 0.1
    # Pyramid levels, coarse to fine: image downsampling factor and demons steps per level.
    factors: tuple[int, ...] = (8, 4, 2, 1)
    steps: tuple[int, ...] = (5, 5, 10, 5)
    # The velocity grid is never finer than 1/grid_factor of the image: smoother fields, fewer folds.
    grid_factor: int = 2
    # Where the demons update of the levels finer than the velocity grid (the full-resolution level) is
    # computed (see FineUpdate). 3D uses ``grid`` (Config.sized_for): on 120x140x120 volumes 8 steps on
    # every voxel took 8.0 s a pair, 12 at the grid's points 6.5 s, for +0.0012 Dice on a T2 -> T1 tune set
    # and +0.0052 held out on CT -> T1, pooled (grid_pool_sigma; benchmarks/RESULTS.md section 31). 2D keeps
    # ``voxels``: on a PD -> T1 tune set at 0.88 mm ``grid`` lost 0.0017 Dice (pooled 0.0028; 8 or 12 steps
    # 0.0030-0.0034) to save 3-7 % of the seconds.
    fine_update: FineUpdate = FineUpdate.VOXELS
    # With ``fine_update: grid``: Gaussian sigma (grid voxels) pooling the Gauss-Newton step's numerator and
    # denominator over neighbouring points before the division, the step of a neighbourhood instead of a point
    # (0 = off). On the 3D T2 -> T1 tune set, 12 steps: 0 0.7830 Dice, 0.5 0.7837, 1 0.7857, 1.5 0.7859, 2 0.7833
    # (benchmarks/RESULTS.md section 31); 1 for the lower HD95 of the two best.
    grid_pool_sigma: float = 1.0
    # The regulariser: Gaussian sigma (voxels of the velocity grid) applied to the velocity after
    # every update. On the skull-stripped phantom 1.0 lost 0.011-0.016 Dice and 2.0 up to 0.005; on
    # the whole-head PD -> T1 tune set (noise, bias, skull) 2.0 gained 0.005-0.007 over 1.5, 1.0 lost
    # 0.027, 3.0 lost 0.017 (benchmarks/RESULTS.md, translation section).
    smooth_sigma: float = 2.0
    # Demons step (see refinement.demons_update): a scale of the Gauss-Newton step, and the weight of
    # the squared residual in its denominator, which bounds the step where the descriptors are flat
    # (Thirion's 1 / sigma_x^2). Measured: step_size 0.75-1.25 give the same Dice within 0.005; 1.5
    # loses 0.01-0.03, 2.0 diverges.
    step_size: float = 1.0
    residual_damping: float = 0.025
    int_steps: int = 3
    mind_radius: int = 1
    mind_dilation: int = 2
    # Gaussian sigma (voxels of the full-resolution grid, scaled to each pyramid level) of a smoothing
    # of the images before their MIND descriptors: MIND's patch distances of single voxels are noisy.
    # Measured (benchmarks/RESULTS.md section 18) on a PD and a T2 -> T1 set, as generated and with extra
    # Rician noise of 3 % and 6 %: 0.7 gained 0.003-0.004 / 0.006-0.011 / 0.011-0.019 Dice over 0;
    # 0.35-0.5 less, 1.0 best at 6 % only (+0.002-0.005 over 0.7), 1.2 lost 0.004-0.008 at no extra noise.
    # 0 = raw images (files of older innreg).
    mind_presmooth: float = 0.7
    # Voxel size (mm) at which smooth_sigma, mind_dilation and mind_presmooth hold: for images of coarser
    # voxels s they scale by reference_spacing / s (the dilation rounded, at least 1), so the regulariser
    # and the descriptor keep their size in mm; finer voxels keep the voxel sizes. 1.08 mm is the voxel
    # size of the 2D tune set the first two were chosen on; on 3D volumes of 1.76 mm the scaled values (sigma 1.2,
    # dilation 1) gained 0.009-0.031 Dice over the unscaled ones (benchmarks/scale3d.md); on 2D slices
    # of 0.88 mm scaling up (sigma 2.45) lost 0.003-0.007 (benchmarks/RESULTS.md). 0 = voxel units
    # whatever the spacing (files of older innreg).
    reference_spacing: float = 1.08
    # Translation guidance: weight of the squared difference between the warped translated moving
    # image and the fixed image (both in [0, 1]) against one MIND channel's; 0 = MIND only. Measured
    # on the whole-head PD -> T1 tune set: 1 and 3 gained 0.011-0.014 Dice, 10 lost 0.009; held out,
    # 3 gained 0.007 on T2 -> T1 and lost 0.008 on CT -> T1 (poor CT translator; RESULTS.md).
    translation_weight: float = 3.0
    # The INN's other direction as a second guide: weight of the squared difference between the warped
    # raw moving image and the fixed image translated into the moving modality by the translator's
    # inverse, ``T^-1(fixed)``, against one MIND channel; 0 = off. Needs an invertible translator
    # (``model.translator: inn``, or an INN guide, whose inverse is then used; unused otherwise; see
    # INNReg.refinement_inverse). Chosen on a PD -> T1 set (+0.007 Dice); held out
    # (RESULTS.md sections 18-19) +0.004 to +0.014 on six fresh PD, CT and T2 -> T1 sets; on two tune
    # sets of older models 0 (FLAIR) and -0.012 (T2). Costs one more translator pass (at full resolution
    # a quarter of a 2D pair's time; see inverse_factor). 3D keeps 0: there it lost 0.009-0.021 on two
    # fresh sets (RESULTS.md section 20; Config.sized_for), the slice-wise guide's inverse 0.008 (section 48).
    inverse_weight: float = 3.0
    # Resolution of ``T^-1(fixed)``: the inverse translates the fixed image downsampled by this factor
    # (on top of the network's working resolution), resized back. 2 costs a quarter of the translator pass
    # of 1: 2D pairs of 224x192 at 10.2-11.2x ANTs SyN's speed instead of 9.1-9.7x (one thread). Dice
    # against 1 on four fresh sets (RESULTS.md section 19; chosen on them): T2 -> T1 +0.000 / +0.005, PD -> T1
    # -0.004 / -0.004; held out afterwards, T2 0.000 and PD -0.005 (35 of 40 pairs lower): 1 where PD's
    # 0.005 matters more than the speed. 1 in files of older innreg.
    inverse_factor: int = 2
    # The translation-weighted intensity channel replaced by the fixed intensity it predicts,
    # E[fixed | channel]: a lookup table from the pair's joint histogram with this many bins, made on each
    # pyramid level as each stage finds the pair aligned; 0 = off. With --no-translate the channel is the raw
    # moving image, so this is the classic intensity-remapping criterion, learned from the pair alone: the
    # strongest ablation of the translation measured (RESULTS.md section 21: on T2 -> T1 +0.014-0.015 Dice
    # over the other ablations, within 0.003 of the default). On the translation itself 32 bins gave
    # -0.001 to +0.005 on four fresh sets, so it is off.
    remap_bins: int = 0
