//! A small U-Net: two resolution levels (16 and 32 channels), 3x3 convolutions with ReLU,
//! max pooling down, nearest-neighbour upsampling and a skip connection up, a 1x1 head that
//! outputs one logit per pixel (or, for the learner example's multiclass run, one per pixel
//! and class).

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
pub struct UNet {
    enc1a: Conv2d,
    enc1b: Conv2d,
    pool: MaxPool2d,
    enc2a: Conv2d,
    enc2b: Conv2d,
    dec1a: Conv2d,
    dec1b: Conv2d,
    head: Conv2d,
}

fn conv3(input: usize, output: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([input, output], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .init(device)
}

impl UNet {
    /// `width` channels at full resolution, `2 * width` at half resolution, one output
    /// channel.
    pub fn new(width: usize, device: &Device) -> Self {
        Self::with_outputs(width, 1, device)
    }

    /// As [`UNet::new`], with `outputs` output channels (one logit per class).
    pub fn with_outputs(width: usize, outputs: usize, device: &Device) -> Self {
        UNet {
            enc1a: conv3(1, width, device),
            enc1b: conv3(width, width, device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            enc2a: conv3(width, 2 * width, device),
            enc2b: conv3(2 * width, 2 * width, device),
            dec1a: conv3(3 * width, width, device),
            dec1b: conv3(width, width, device),
            head: Conv2dConfig::new([width, outputs], [1, 1]).init(device),
        }
    }

    /// `[B, 1, H, W]` images (H, W even) to `[B, outputs, H, W]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let e1 = relu(self.enc1b.forward(relu(self.enc1a.forward(x))));
        let e2 = self.pool.forward(e1.clone());
        let e2 = relu(self.enc2b.forward(relu(self.enc2a.forward(e2))));
        let up = interpolate(
            e2,
            InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([h, w]),
        );
        let d1 = Tensor::cat(vec![up, e1], 1);
        let d1 = relu(self.dec1b.forward(relu(self.dec1a.forward(d1))));
        self.head.forward(d1)
    }
}
