//! The `flex` CPU training backend's own kernels: fused forward and backward passes for the
//! operations of `model::ops` whose memory traffic, scalar libm calls and strided copies
//! dominate a small model's step on the CPU when burn composes them. They are a fast path
//! only: `model::ops` offers each operation here first and, where it is declined, composes it
//! from burn's tensor operations, which is what every other backend (`cuda`, `wgpu`,
//! `ndarray`) runs. The kernels agree with those to rounding (each module's tests).
//!
//! - [`fused`]: the attention softmax, LayerNorm, GELU, dropout and the masked-LM
//!   cross-entropy, with a vectorisable `exp`;
//! - [`linear`]: the dense layers' `x · W + b` as one product;
//! - [`head_split`]: attention's split into heads and merge back without strided copies;
//! - [`simd`]: the row reductions in fixed-order lanes, and the CPU dispatch.
//!
//! The functions `model::ops` calls take tensors of any backend and decide by type: the
//! kernels run for f32 tensors of `flex` under autodiff (the training backend, "the tape";
//! [`on_tape`]) and, for inference, of plain `flex` ([`is_flex_f32`]); anything else they hand
//! back unchanged.

pub mod fused;
pub mod head_split;
pub mod linear;
pub mod simd;

use std::any::{Any, TypeId};

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_flex::FlexTensor;

pub(crate) use fused::contiguous;

/// The CPU training backend the kernels are for.
pub(crate) type Tape = Autodiff<Flex>;

/// `value` as type `T`, which the caller has checked it is.
fn same_type<X: Any, T: Any>(value: X) -> T {
    *(Box::new(value) as Box<dyn Any>)
        .downcast::<T>()
        .expect("the caller checked the types are the same")
}

/// Whether `tensor` is an f32 tensor of backend `Of` (what the kernels handle).
fn is_f32_of<Of: Backend, B: Backend, const D: usize>(tensor: &Tensor<B, D>) -> bool {
    TypeId::of::<B>() == TypeId::of::<Of>() && tensor.dtype() == DType::F32
}

/// The primitive of `tensor`, whose backend the caller has checked is `Of` ([`is_f32_of`]).
fn primitive_of<Of: Backend, B: Backend, const D: usize>(tensor: Tensor<B, D>) -> FloatTensor<Of> {
    same_type::<_, Tensor<Of, D>>(tensor)
        .into_primitive()
        .tensor()
}

/// `primitive` of backend `Of` as a tensor of `B`, which the caller has checked is `Of`.
fn tensor_of<Of: Backend, B: Backend, const D: usize>(primitive: FloatTensor<Of>) -> Tensor<B, D> {
    same_type(Tensor::<Of, D>::from_primitive(TensorPrimitive::Float(
        primitive,
    )))
}

/// Whether `B` is the flex training backend and `tensor` is f32 (what the kernels handle).
pub(crate) fn on_tape<B: Backend, const D: usize>(tensor: &Tensor<B, D>) -> bool {
    is_f32_of::<Tape, B, D>(tensor)
}

/// The tape's primitive of `tensor`, whose backend the caller has checked ([`on_tape`]).
pub(crate) fn into_tape<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> FloatTensor<Tape> {
    primitive_of::<Tape, B, D>(tensor)
}

/// `primitive` as a tensor of `B`, which the caller has checked is the tape.
pub(crate) fn from_tape<B: Backend, const D: usize>(primitive: FloatTensor<Tape>) -> Tensor<B, D> {
    tensor_of::<Tape, B, D>(primitive)
}

/// Whether `tensor` is an f32 tensor of the flex backend itself (no autodiff): what
/// [`into_flex`] takes.
pub(crate) fn is_flex_f32<B: Backend, const D: usize>(tensor: &Tensor<B, D>) -> bool {
    is_f32_of::<Flex, B, D>(tensor)
}

/// The flex primitive of `tensor`, which the caller has checked with [`is_flex_f32`].
pub(crate) fn into_flex<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> FlexTensor {
    primitive_of::<Flex, B, D>(tensor)
}

/// `primitive` as a tensor of `B`, which the caller has checked is the flex backend.
pub(crate) fn from_flex<B: Backend, const D: usize>(primitive: FlexTensor) -> Tensor<B, D> {
    tensor_of::<Flex, B, D>(primitive)
}
