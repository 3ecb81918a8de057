//! Code 128 barcodes as SVG, for specimen labels (CLSI AUTO2 recommends Code 128).
//!
//! `barcoders` encodes the symbol (start code, data, mod-103 check character, stop); this
//! module draws it: adjacent dark modules merged into one bar, integer module coordinates with
//! `shape-rendering="crispEdges"` so no bar is anti-aliased into its neighbour, and a light
//! quiet zone of [`QUIET_ZONE_MODULES`] narrow-bar widths on each side. The drawing is in
//! module units (`viewBox`), so it scales to the label without moving an edge between bars.

use barcoders::sym::code128::Code128;
use cuvette_domain::Accession;

use crate::web::escape_xml;

/// Light modules on each side of the symbol (ISO/IEC 15417 asks for at least 10).
pub const QUIET_ZONE_MODULES: usize = 10;

/// Height of the bars in module units (the label stretches the drawing to its own box).
pub const BAR_HEIGHT_MODULES: usize = 40;

/// The modules of a Code 128 symbol (1 = dark), without the quiet zones. Even-length digit
/// strings use code set C (two digits per symbol character, the densest for accessions);
/// anything else uses code set B. `None` when the data cannot be encoded.
pub fn code128_modules(data: &str) -> Option<Vec<u8>> {
    if data.is_empty() {
        return None;
    }
    let all_digits = data.bytes().all(|b| b.is_ascii_digit());
    let start = if all_digits && data.len().is_multiple_of(2) { 'Ć' } else { 'Ɓ' };
    Code128::new(format!("{start}{data}")).ok().map(|c| c.encode())
}

/// The bars of a module sequence as `(first module, width in modules)`.
fn bars(modules: &[u8]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, &m) in modules.iter().enumerate() {
        if m != 1 {
            continue;
        }
        match out.last_mut() {
            Some((start, width)) if *start + *width == i => *width += 1,
            _ => out.push((i, 1)),
        }
    }
    out
}

/// A Code 128 SVG of `data`: one `<rect>` per bar on a white background, quiet zones
/// included. `scale` sets the `width`/`height` attributes in CSS pixels per module (a page
/// may override them; the label stretches the drawing to its box). `standalone` adds the XML
/// namespace for serving the SVG as a file.
pub fn code128_svg(data: &str, scale: u32, standalone: bool) -> Option<String> {
    let modules = code128_modules(data)?;
    let width = modules.len() + 2 * QUIET_ZONE_MODULES;
    let height = BAR_HEIGHT_MODULES;
    let scale = scale.max(1) as usize;
    let xmlns = if standalone { " xmlns=\"http://www.w3.org/2000/svg\"" } else { "" };
    let mut svg = format!(
        "<svg{xmlns} version=\"1.1\" viewBox=\"0 0 {width} {height}\" width=\"{}\" height=\"{}\" \
         preserveAspectRatio=\"none\" shape-rendering=\"crispEdges\" role=\"img\" \
         aria-label=\"Code 128 barcode {data}\">",
        width * scale,
        height * scale,
        // `data` is digits or Code 128 set B text; escape it for the attribute anyway.
        data = escape_xml(data),
    );
    svg.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#fff\"/>"
    ));
    for (start, w) in bars(&modules) {
        svg.push_str(&format!(
            "<rect x=\"{}\" y=\"0\" width=\"{w}\" height=\"{height}\" fill=\"#000\"/>",
            start + QUIET_ZONE_MODULES
        ));
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// The barcode of an accession number: its ten digits, as a scanner returns them.
pub fn accession_svg(accession: Accession, scale: u32, standalone: bool) -> String {
    // Ten ASCII digits always encode in code set C.
    code128_svg(&accession.digits(), scale, standalone).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `(x, width)` of every black bar in an SVG drawn by [`code128_svg`].
    fn drawn_bars(svg: &str) -> Vec<(usize, usize)> {
        svg.split("<rect ")
            .skip(1)
            .filter(|r| r.contains("fill=\"#000\""))
            .map(|r| {
                let attr = |name: &str| -> usize {
                    let from = r.find(&format!("{name}=\"")).expect("attribute") + name.len() + 2;
                    r[from..].split('"').next().unwrap().parse().unwrap()
                };
                (attr("x"), attr("width"))
            })
            .collect()
    }

    /// The viewBox width of an SVG.
    fn view_width(svg: &str) -> usize {
        let from = svg.find("viewBox=\"0 0 ").unwrap() + "viewBox=\"0 0 ".len();
        svg[from..].split(' ').next().unwrap().parse().unwrap()
    }

    /// Rebuilds the module sequence (without quiet zones) from the drawn bars.
    fn modules_of(svg: &str) -> Vec<u8> {
        let width = view_width(svg) - 2 * QUIET_ZONE_MODULES;
        let mut m = vec![0u8; width];
        for (x, w) in drawn_bars(svg) {
            for cell in &mut m[x - QUIET_ZONE_MODULES..x - QUIET_ZONE_MODULES + w] {
                *cell = 1;
            }
        }
        m
    }

    /// The 11-module pattern of every code set C value, taken from barcoders' own encoding
    /// of `Ć` + the two digits (start C, the value, check, stop).
    fn set_c_table() -> Vec<Vec<u8>> {
        (0..100)
            .map(|v| Code128::new(format!("Ć{v:02}")).unwrap().encode()[11..22].to_vec())
            .collect()
    }

    #[test]
    fn a_known_accession_draws_the_expected_bars_and_width() {
        let a = Accession::new(26, 123).unwrap();
        assert_eq!(a.digits(), "2600001230");
        let svg = accession_svg(a, 2, true);
        // Start C + 5 data characters + check character = 7 × 11 modules, stop = 13 modules,
        // plus 10 light modules on each side.
        assert_eq!(view_width(&svg), 7 * 11 + 13 + 2 * QUIET_ZONE_MODULES);
        assert!(svg.contains("width=\"220\""));
        // Every symbol character has 3 bars; the stop pattern (with its termination bar) 4.
        let bars = drawn_bars(&svg);
        assert_eq!(bars.len(), 7 * 3 + 4);
        // Bars are 1 to 4 modules wide, and the first starts right after the quiet zone.
        assert!(bars.iter().all(|(_, w)| (1..=4).contains(w)));
        assert_eq!(bars[0].0, QUIET_ZONE_MODULES);
        // The last bar ends one quiet zone before the right edge.
        let (x, w) = bars[bars.len() - 1];
        assert_eq!(x + w, view_width(&svg) - QUIET_ZONE_MODULES);
        // Crisp edges, no antialiasing between adjacent bars.
        assert!(svg.contains("shape-rendering=\"crispEdges\""));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(!accession_svg(a, 1, false).contains("xmlns"));
    }

    #[test]
    fn the_drawn_modules_are_exactly_barcoders_encoding() {
        let data = Accession::new(26, 4_567_890).unwrap().digits();
        let svg = code128_svg(&data, 1, false).unwrap();
        let expected = Code128::new(format!("Ć{data}")).unwrap().encode();
        assert_eq!(modules_of(&svg), expected);
        // Dark modules in the drawing equal the dark modules of the encoding.
        let dark: usize = drawn_bars(&svg).iter().map(|(_, w)| w).sum();
        assert_eq!(dark, expected.iter().filter(|m| **m == 1).count());
    }

    #[test]
    fn the_digits_decode_back_from_the_drawing() {
        let table = set_c_table();
        for (year, seq) in [(26, 1), (26, 12), (99, 9_999_999), (0, 4_242_424)] {
            let data = Accession::new(year, seq).unwrap().digits();
            let modules = modules_of(&code128_svg(&data, 1, false).unwrap());
            let symbols: Vec<&[u8]> = modules.chunks(11).collect();
            // Start code C is value 105 (drawn from barcoders' encoding of any set C data).
            let start_c = &Code128::new("Ć00").unwrap().encode()[..11];
            assert_eq!(symbols[0], start_c);
            // Data: one set C value per pair of digits.
            let values: Vec<usize> = symbols[1..6]
                .iter()
                .map(|s| table.iter().position(|p| p.as_slice() == *s).expect("a set C value"))
                .collect();
            let decoded: String = values.iter().map(|v| format!("{v:02}")).collect();
            assert_eq!(decoded, data);
            // The check character is the mod-103 weighted sum (start C = 105).
            let check =
                (105 + values.iter().enumerate().map(|(i, v)| (i + 1) * v).sum::<usize>()) % 103;
            if let Some(pattern) = table.get(check) {
                assert_eq!(symbols[6], pattern.as_slice());
            }
        }
    }

    #[test]
    fn text_falls_back_to_code_set_b_and_is_escaped() {
        let svg = code128_svg("A<1", 1, false).unwrap();
        assert!(svg.contains("aria-label=\"Code 128 barcode A&lt;1\""));
        // Start B + 3 data + check = 5 × 11, stop 13.
        assert_eq!(view_width(&svg), 5 * 11 + 13 + 2 * QUIET_ZONE_MODULES);
        assert!(code128_svg("", 1, false).is_none());
        assert!(code128_svg("é☺", 1, false).is_none());
    }
}
