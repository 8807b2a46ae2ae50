//! VP8 decoding with the system libvpx (Debian `libvpx-dev`), through the
//! `env-libvpx-sys` bindings.
//!
//! Why libvpx: it is what Chromium itself decodes VP8 with, it handles inter
//! frames and every VP8 feature browsers use, and Debian ships it (1.12, for
//! which the crate has pre-generated bindings, so no bindgen/clang at build
//! time). No pure-Rust VP8 decoder handles inter frames (the image crates
//! decode WebP's intra-only VP8).

use std::ptr;

use vpx_sys as vpx;

use super::scale::Planes;

/// One libvpx VP8 decoder instance.
pub struct Vp8Decoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
}

// SAFETY: the context is only used through `&mut self`; libvpx contexts are
// not tied to the thread that created them.
unsafe impl Send for Vp8Decoder {}

impl Vp8Decoder {
    pub fn new() -> Result<Self, String> {
        // SAFETY: a zeroed context is what vpx_codec_dec_init_ver expects;
        // the interface pointer is static; cfg outlives the call.
        unsafe {
            let mut ctx: Box<vpx::vpx_codec_ctx_t> = Box::new(std::mem::zeroed());
            let cfg = vpx::vpx_codec_dec_cfg_t {
                threads: 1,
                w: 0,
                h: 0,
            };
            let err = vpx::vpx_codec_dec_init_ver(
                &mut *ctx,
                vpx::vpx_codec_vp8_dx(),
                &cfg,
                0,
                vpx::VPX_DECODER_ABI_VERSION as i32,
            );
            if err != vpx::VPX_CODEC_OK {
                return Err(format!(
                    "cannot start the VP8 decoder (libvpx error {err:?})"
                ));
            }
            Ok(Vp8Decoder { ctx })
        }
    }

    /// Decode one VP8 frame; `out` sees each picture that comes out.
    pub fn decode(&mut self, frame: &[u8], out: &mut dyn FnMut(Planes<'_>)) -> Result<(), String> {
        let len = u32::try_from(frame.len()).map_err(|_| "VP8 frame too large".to_string())?;
        // SAFETY: ctx was initialised in new(); the data pointer is valid
        // for `len` bytes during the call; images returned by get_frame stay
        // valid until the next decode call on this context, and are only
        // read inside this function.
        unsafe {
            let err =
                vpx::vpx_codec_decode(&mut *self.ctx, frame.as_ptr(), len, ptr::null_mut(), 0);
            if err != vpx::VPX_CODEC_OK {
                return Err(format!("VP8 decode error {err:?}"));
            }
            let mut iter: vpx::vpx_codec_iter_t = ptr::null();
            loop {
                let img = vpx::vpx_codec_get_frame(&mut *self.ctx, &mut iter);
                if img.is_null() {
                    break;
                }
                let img = &*img;
                if img.fmt != vpx::vpx_img_fmt::VPX_IMG_FMT_I420 {
                    return Err(format!("VP8 picture in unexpected format {:?}", img.fmt));
                }
                let (w, h) = (img.d_w as usize, img.d_h as usize);
                let (ys, us, vs) = (
                    img.stride[0] as usize,
                    img.stride[1] as usize,
                    img.stride[2] as usize,
                );
                let ch = h.div_ceil(2);
                out(Planes {
                    width: w,
                    height: h,
                    y: std::slice::from_raw_parts(img.planes[0], ys * h),
                    u: std::slice::from_raw_parts(img.planes[1], us * ch),
                    v: std::slice::from_raw_parts(img.planes[2], vs * ch),
                    y_stride: ys,
                    uv_stride: us.min(vs),
                });
            }
        }
        Ok(())
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: initialised in new(), destroyed once.
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}
