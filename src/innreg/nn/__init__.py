"""Networks of innreg (2D and 3D from one code path); re-exports the spatial transformer of :mod:`innreg.core`."""

from innreg.nn.coupling import AffineCoupling, ConvSubnet, InvertibleBlock, InvertibleConv1x1, squeeze, unsqueeze
from innreg.nn.ddc import DDCSubnet, DynamicDepthwiseConv, LocalAttentionGate, depthwise_conv
from innreg.nn.discriminator import PatchDiscriminator
from innreg.nn.registration import RegistrationNet, RegistrationOutput
from innreg.nn.resnet import ResNetTranslator
from innreg.nn.slicewise import SliceWise
from innreg.nn.translator import INNTranslator
from innreg.nn.layers import to_channels_last
from innreg.nn.unet import UNet
from innreg.nn.unet_translator import UNetTranslator
from innreg.core.warp import (
    InterpMode,
    PaddingMode,
    compose,
    identity_grid,
    integrate_velocity,
    invert_field,
    resize_field,
    warp,
)

__all__ = [
    "AffineCoupling",
    "ConvSubnet",
    "DDCSubnet",
    "DynamicDepthwiseConv",
    "INNTranslator",
    "InterpMode",
    "InvertibleBlock",
    "InvertibleConv1x1",
    "LocalAttentionGate",
    "PaddingMode",
    "PatchDiscriminator",
    "RegistrationNet",
    "RegistrationOutput",
    "ResNetTranslator",
    "SliceWise",
    "UNet",
    "UNetTranslator",
    "compose",
    "depthwise_conv",
    "identity_grid",
    "integrate_velocity",
    "invert_field",
    "resize_field",
    "squeeze",
    "to_channels_last",
    "unsqueeze",
    "warp",
]
