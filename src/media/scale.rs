//! I420 (YUV 4:2:0) pictures to RGB8 at a chosen size (pure).
//!
//! Scaling happens in YUV, before the colour conversion: a 160x120 thumbnail
//! of a 640x480 picture then converts 19 200 pixels instead of 307 200
//! (rust-stack.md §3 measured the RGB-first route as the most expensive step).
//! Each output pixel is the average of its source box, so thin marks in the
//! picture (the test pattern's frame counter) survive the downscale.

/// A borrowed I420 picture: full-size luma, half-size chroma planes.
#[derive(Debug, Clone, Copy)]
pub struct Planes<'a> {
    pub width: usize,
    pub height: usize,
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub y_stride: usize,
    pub uv_stride: usize,
}

/// The largest size that fits in `max` keeping the aspect ratio, never
/// larger than the source and never zero.
pub fn fit(width: u32, height: u32, max: (u32, u32)) -> (u32, u32) {
    if width == 0 || height == 0 {
        return (0, 0);
    }
    if width <= max.0 && height <= max.1 {
        return (width, height);
    }
    let sx = max.0 as f64 / width as f64;
    let sy = max.1 as f64 / height as f64;
    let s = sx.min(sy);
    (
        ((width as f64 * s).round() as u32).max(1),
        ((height as f64 * s).round() as u32).max(1),
    )
}

/// Box-average `planes` down (or copy) to `out_w x out_h` and convert to
/// RGB8 (BT.601 limited range, what H.264 and VP8 browsers send).
pub fn to_rgb(p: &Planes<'_>, out_w: usize, out_h: usize) -> Vec<u8> {
    let mut rgb = vec![0u8; out_w * out_h * 3];
    if p.width == 0 || p.height == 0 || out_w == 0 || out_h == 0 {
        return rgb;
    }
    let (cw, ch) = (p.width.div_ceil(2), p.height.div_ceil(2));
    for oy in 0..out_h {
        let y0 = oy * p.height / out_h;
        let y1 = ((oy + 1) * p.height / out_h).max(y0 + 1);
        let cy0 = y0 / 2;
        let cy1 = y1.div_ceil(2).clamp(cy0 + 1, ch);
        for ox in 0..out_w {
            let x0 = ox * p.width / out_w;
            let x1 = ((ox + 1) * p.width / out_w).max(x0 + 1);
            let cx0 = x0 / 2;
            let cx1 = x1.div_ceil(2).clamp(cx0 + 1, cw);
            let luma = box_mean(p.y, p.y_stride, x0, x1, y0, y1);
            let cb = box_mean(p.u, p.uv_stride, cx0, cx1, cy0, cy1);
            let cr = box_mean(p.v, p.uv_stride, cx0, cx1, cy0, cy1);
            let o = (oy * out_w + ox) * 3;
            rgb[o..o + 3].copy_from_slice(&yuv_to_rgb(luma, cb, cr));
        }
    }
    rgb
}

fn box_mean(plane: &[u8], stride: usize, x0: usize, x1: usize, y0: usize, y1: usize) -> u8 {
    if x1 - x0 == 1 && y1 - y0 == 1 {
        return plane.get(y0 * stride + x0).copied().unwrap_or(128);
    }
    let mut sum = 0u32;
    let mut n = 0u32;
    for y in y0..y1 {
        let row = y * stride;
        if let Some(px) = plane.get(row + x0..row + x1) {
            sum += px.iter().map(|&v| v as u32).sum::<u32>();
            n += px.len() as u32;
        }
    }
    sum.checked_div(n).map_or(128, |m| m as u8)
}

/// BT.601 limited range YCbCr to RGB, integer arithmetic.
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (y as i32 - 16).max(0) * 298;
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut y = vec![0; w * h];
        for r in 0..h {
            for c in 0..w {
                y[r * w + c] = f(c, r);
            }
        }
        let cw = w.div_ceil(2) * h.div_ceil(2);
        (y, vec![128; cw], vec![128; cw])
    }

    #[test]
    fn fit_keeps_aspect_and_never_upscales() {
        assert_eq!(fit(640, 480, (160, 120)), (160, 120));
        assert_eq!(fit(1280, 720, (160, 120)), (160, 90));
        assert_eq!(fit(120, 90, (160, 120)), (120, 90));
        assert_eq!(fit(0, 90, (160, 120)), (0, 0));
    }

    #[test]
    fn grey_levels_convert_to_grey() {
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        let [r, g, b] = yuv_to_rgb(81, 90, 240); // BT.601 red
        assert!(r > 240 && g < 20 && b < 20, "{r} {g} {b}");
    }

    #[test]
    fn box_average_keeps_left_right_halves() {
        // Left half black, right half white, 64x48 down to 16x12.
        let (y, u, v) = picture(64, 48, |x, _| if x < 32 { 16 } else { 235 });
        let p = Planes {
            width: 64,
            height: 48,
            y: &y,
            u: &u,
            v: &v,
            y_stride: 64,
            uv_stride: 32,
        };
        let rgb = to_rgb(&p, 16, 12);
        assert_eq!(rgb.len(), 16 * 12 * 3);
        assert_eq!(&rgb[0..3], &[0, 0, 0]);
        let last = (16 * 12 - 1) * 3;
        assert_eq!(&rgb[last..last + 3], &[255, 255, 255]);
        // A 2-pixel-wide white line averages to a mid grey, not to nothing.
        let (y, u, v) = picture(64, 48, |x, _| if (20..22).contains(&x) { 235 } else { 16 });
        let p = Planes {
            y: &y,
            u: &u,
            v: &v,
            ..p
        };
        let rgb = to_rgb(&p, 16, 12);
        assert!(rgb[5 * 3] > 100, "line lost: {}", rgb[5 * 3]);
    }

    #[test]
    fn strides_larger_than_width_are_honoured() {
        // Padded rows: the padding (value 0) must never be read.
        let (w, h, stride) = (8, 4, 16);
        let y = (0..stride * h)
            .map(|i| if i % stride < w { 235 } else { 0 })
            .collect::<Vec<u8>>();
        let c = vec![128u8; 8 * 2];
        let p = Planes {
            width: w,
            height: h,
            y: &y,
            u: &c,
            v: &c,
            y_stride: stride,
            uv_stride: 8,
        };
        let rgb = to_rgb(&p, 4, 2);
        assert!(rgb.iter().all(|&v| v == 255));
    }
}
