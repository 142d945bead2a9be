//! The plot's text, with each glyph where the font places it.
//!
//! plotters 0.3.7 draws text through ab_glyph, but puts the left edge of each glyph's outline
//! at the pen position: it drops the glyph's left side bearing (`px_bounds().min.x`). In the
//! bundled monospace font every glyph has the same advance and the narrow ones ('.', ':')
//! sit in the middle of their cell, so a '.' came out against the digit before it with the
//! rest of its cell blank after it: "0. 1", "3. 6%". [`Glyphs`] wraps the bitmap backend and
//! draws the text itself, each glyph at the pen position plus its bearing; everything else,
//! the text's layout box and anchoring included, stays plotters'.

use ab_glyph::{Font, FontRef, ScaleFont, point};
use plotters::prelude::BitMapBackend;
use plotters_backend::text_anchor::Pos;
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    FontFamily, FontStyle, FontTransform,
};

type Error<'a> = DrawingErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

/// A [`BitMapBackend`] that draws text in one font (the one registered with plotters under
/// the family names the plot uses, for plotters' layout boxes to match).
pub struct Glyphs<'a> {
    inner: BitMapBackend<'a>,
    font: FontRef<'static>,
}

impl<'a> Glyphs<'a> {
    /// `font`: the bytes of a TrueType or OpenType font.
    pub fn new(
        inner: BitMapBackend<'a>,
        font: &'static [u8],
    ) -> Result<Self, ab_glyph::InvalidFont> {
        Ok(Self {
            inner,
            font: FontRef::try_from_slice(font)?,
        })
    }
}

impl<'a> DrawingBackend for Glyphs<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), Error<'a>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), Error<'a>> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), Error<'a>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Error<'a>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Error<'a>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), Error<'a>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    /// The default text drawing (anchor, rotation, clipping), with the glyphs placed by
    /// [`Placed`].
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), Error<'a>> {
        let placed = Placed {
            style,
            font: &self.font,
        };
        self.inner.draw_text(text, &placed, pos)
    }
}

/// plotters' text style, drawn with each glyph's side bearing.
struct Placed<'s, S> {
    style: &'s S,
    font: &'s FontRef<'static>,
}

impl<S: BackendTextStyle> BackendTextStyle for Placed<'_, S> {
    type FontError = S::FontError;

    fn color(&self) -> BackendColor {
        self.style.color()
    }

    fn size(&self) -> f64 {
        self.style.size()
    }

    fn transform(&self) -> FontTransform {
        self.style.transform()
    }

    fn style(&self) -> FontStyle {
        self.style.style()
    }

    fn anchor(&self) -> Pos {
        self.style.anchor()
    }

    fn family(&self) -> FontFamily<'_> {
        self.style.family()
    }

    fn layout_box(&self, text: &str) -> Result<((i32, i32), (i32, i32)), Self::FontError> {
        self.style.layout_box(text)
    }

    fn draw<E, F: FnMut(i32, i32, BackendColor) -> Result<(), E>>(
        &self,
        text: &str,
        (x, y): BackendCoord,
        mut draw: F,
    ) -> Result<Result<(), E>, Self::FontError> {
        let size = self.style.size() as f32;
        let font = self.font.as_scaled(size);
        let color = self.style.color();
        let mut pen = 0.0f32;
        let mut previous = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(previous) = previous {
                pen += font.kern(previous, id);
            }
            previous = Some(id);
            // The baseline half the font size below the top of the layout box, as plotters
            // puts it; horizontally, the pen position (the outline then starts at its bearing).
            let glyph = id.with_scale_and_position(font.scale(), point(pen, size / 2.0));
            if let Some(outline) = font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                let (left, top) = (x + bounds.min.x as i32, y + bounds.min.y as i32);
                let mut result = Ok(());
                outline.draw(|dx, dy, coverage| {
                    if result.is_ok() {
                        result = draw(
                            left + dx as i32,
                            top + dy as i32,
                            color.mix(f64::from(coverage)),
                        );
                    }
                });
                if result.is_err() {
                    return Ok(result);
                }
            }
            pen += font.h_advance(id);
        }
        Ok(Ok(()))
    }
}
