//! One page record of the plugin's output at a time: its head, its
//! image, a failed page's reason, the text layer it names.

use std::io::Write;

use super::{a4, check_size, placeholder, OcrPage, PageEncoder};
use super::{le32, PdfStream, State};
use crate::sanitize::{SanitizeError, MAX_PAGE_REASON, PAGE_RENDERED};

impl<W: Write> PdfStream<W> {
    pub(super) fn record_head(&mut self) -> Result<(), SanitizeError> {
        let page = self.done + 1;
        let (width, height) = (le32(&self.head[1..5]), le32(&self.head[5..9]));
        if self.head[0] == PAGE_RENDERED {
            let what = || format!("page {page}");
            self.total_pixels += check_size(width, height, &what, &self.limits)?;
            if self.total_pixels > self.limits.max_total_pixels {
                return Err(SanitizeError::TooManyPixels {
                    page,
                    limit: self.limits.max_total_pixels,
                });
            }
            let buffer = std::mem::take(&mut self.deflated);
            self.state = State::Pixels {
                width,
                height,
                remaining: u64::from(width) * u64::from(height) * 3,
                encoder: PageEncoder::new(buffer, self.compress),
            };
        } else {
            let len = le32(&self.head[9..13]);
            if len as usize > MAX_PAGE_REASON {
                return Err(SanitizeError::BadReason { page, len });
            }
            self.state = State::Reason {
                width,
                height,
                len: len as usize,
                text: Vec::with_capacity(len as usize),
            };
            if len == 0 {
                self.end_reason()?;
            }
        }
        self.head.clear();
        Ok(())
    }

    /// The last pixel of a rendered page is in: write its objects.
    pub(super) fn end_image(&mut self) -> Result<(), SanitizeError> {
        let State::Pixels {
            width,
            height,
            encoder,
            ..
        } = std::mem::replace(&mut self.state, State::Record)
        else {
            unreachable!("end_image outside an image");
        };
        let mut data = encoder.finish().map_err(SanitizeError::Write)?;
        let (image, content, page) = (self.alloc(), self.alloc(), self.alloc());
        let dict = format!(
            "/Type /XObject /Subtype /Image /Width {width} /Height {height} \
             /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode"
        );
        self.stream(image, &dict, &data)?;
        data.clear();
        self.deflated = data;
        let (w_pt, h_pt) = self.points(width, height);
        let draw = format!("q\n{w_pt} 0 0 {h_pt} 0 0 cm\n/Im0 Do\nQ");
        self.stream(content, "", draw.as_bytes())?;
        let (contents, resources) = match self.text_layer_for(width, height)? {
            Some((text, font)) => (
                format!("[{content} 0 R {text} 0 R]"),
                format!("<< /XObject << /Im0 {image} 0 R >> /Font << /F2 {font} 0 R >> >>"),
            ),
            None => (
                format!("{content} 0 R"),
                format!("<< /XObject << /Im0 {image} 0 R >> >>"),
            ),
        };
        self.page(page, &contents, (&w_pt, &h_pt), &resources)?;
        self.last_size = Some((width, height));
        self.record_done();
        Ok(())
    }

    /// A failed page's reason is in: write its placeholder.
    pub(super) fn end_reason(&mut self) -> Result<(), SanitizeError> {
        let State::Reason {
            width,
            height,
            text,
            ..
        } = std::mem::replace(&mut self.state, State::Record)
        else {
            unreachable!("end_reason outside a reason");
        };
        let number = self.done + 1;
        let reason = String::from_utf8(text).map_err(|e| SanitizeError::BadReason {
            page: number,
            len: e.as_bytes().len() as u32,
        })?;
        // Shown on terminals and in the audit log: escaped like every
        // message from a plugin.
        let reason = crate::escape::escape(reason.as_bytes());
        self.report.failed.push((number, reason));
        // The plugin's size is only a hint: a bad one gives way.
        let what = String::new;
        let (width, height) = match check_size(width, height, &what, &self.limits) {
            Ok(_) => (width, height),
            Err(_) => self.last_size.unwrap_or_else(|| a4(self.limits.dpi)),
        };
        let font = match self.font {
            Some(font) => font,
            None => {
                let font = self.alloc();
                self.object(
                    font,
                    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
                )?;
                *self.font.insert(font)
            }
        };
        let (content, page) = (self.alloc(), self.alloc());
        let (w_pt, h_pt) = self.points(width, height);
        self.stream(
            content,
            "",
            placeholder(number, width, height, self.limits.dpi).as_bytes(),
        )?;
        let resources = format!("<< /Font << /F1 {font} 0 R >> >>");
        self.page(page, &format!("{content} 0 R"), (&w_pt, &h_pt), &resources)?;
        self.record_done();
        Ok(())
    }

    /// With a text layer: the page just received is kept for OCR; returns
    /// its text layer's object (written later) and the font's.
    pub(super) fn text_layer_for(
        &mut self,
        width: u32,
        height: u32,
    ) -> Result<Option<(usize, usize)>, SanitizeError> {
        if self.ocr.is_none() {
            return Ok(None);
        }
        let font = match self.ocr.as_ref().and_then(|o| o.font) {
            Some(font) => font,
            None => {
                let font = self.alloc();
                self.object(
                    font,
                    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
                )?;
                font
            }
        };
        let text = self.alloc();
        let number = self.done + 1;
        if let Some(spill) = &mut self.ocr {
            spill.font = Some(font);
            spill.pages.push(OcrPage {
                number,
                width,
                height,
                offset: spill.page_start,
                text_object: text,
                written: false,
            });
            spill.page_start = spill.len;
        }
        Ok(Some((text, font)))
    }

    pub(super) fn record_done(&mut self) {
        self.done += 1;
        self.state = if self.done == self.report.declared {
            State::End
        } else {
            State::Record
        };
    }
}
