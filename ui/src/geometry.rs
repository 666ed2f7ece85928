//! Where things are drawn on the canvas: node boxes, their ports, the curves of edges, and the
//! conversion between screen and canvas coordinates under pan and zoom.

use weir_model::Position;

/// A node box's width, in canvas units.
pub const NODE_WIDTH: f64 = 190.0;
/// The height of a node's title bar.
pub const HEADER: f64 = 30.0;
/// The height of one port row.
pub const PORT_ROW: f64 = 22.0;
/// The space below the last port row (the counters line).
pub const FOOTER: f64 = 22.0;

/// A node box's height for its port counts.
pub fn node_height(inputs: usize, outputs: usize) -> f64 {
    HEADER + PORT_ROW * inputs.max(outputs).max(1) as f64 + FOOTER
}

/// The centre of input port `index` (on the left side) of a node at `at`.
pub fn input_point(at: Position, index: usize) -> (f64, f64) {
    (at.left, at.top + HEADER + PORT_ROW * (index as f64 + 0.5))
}

/// The centre of output port `index` (on the right side) of a node at `at`.
pub fn output_point(at: Position, index: usize) -> (f64, f64) {
    (at.left + NODE_WIDTH, at.top + HEADER + PORT_ROW * (index as f64 + 0.5))
}

/// An SVG path from an output to an input: a curve leaving rightwards and arriving from the
/// left, stretched so that backward edges (loops) stay readable.
pub fn edge_path(from: (f64, f64), to: (f64, f64)) -> String {
    let pull = ((to.0 - from.0).abs() / 2.0).max(60.0);
    format!(
        "M {:.1} {:.1} C {:.1} {:.1}, {:.1} {:.1}, {:.1} {:.1}",
        from.0,
        from.1,
        from.0 + pull,
        from.1,
        to.0 - pull,
        to.1,
        to.0,
        to.1
    )
}

/// Pan and zoom of the canvas: screen = canvas × zoom + pan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Horizontal offset in screen pixels.
    pub pan_x: f64,
    /// Vertical offset in screen pixels.
    pub pan_y: f64,
    /// Scale.
    pub zoom: f64,
}

impl Default for View {
    fn default() -> Self {
        Self { pan_x: 0.0, pan_y: 0.0, zoom: 1.0 }
    }
}

/// The zoom range.
const ZOOM: (f64, f64) = (0.2, 3.0);

impl View {
    /// The canvas point under the screen point (x, y) (relative to the canvas element).
    pub fn to_canvas(&self, x: f64, y: f64) -> Position {
        Position { left: (x - self.pan_x) / self.zoom, top: (y - self.pan_y) / self.zoom }
    }

    /// Zooms by `factor` keeping the canvas point under the screen point (x, y) in place.
    pub fn zoom_at(&self, x: f64, y: f64, factor: f64) -> Self {
        let zoom = (self.zoom * factor).clamp(ZOOM.0, ZOOM.1);
        let under = self.to_canvas(x, y);
        Self { pan_x: x - under.left * zoom, pan_y: y - under.top * zoom, zoom }
    }

    /// The SVG transform of the canvas group.
    pub fn transform(&self) -> String {
        format!("translate({:.1} {:.1}) scale({:.3})", self.pan_x, self.pan_y, self.zoom)
    }

    /// The view that shows every box of `boxes` (left, top, width, height, in canvas units)
    /// whole and centred in a canvas of `width` × `height` screen pixels, with a margin; never
    /// zoomed in past 100%, so a small flow keeps its size.
    pub fn fit(boxes: &[(f64, f64, f64, f64)], width: f64, height: f64) -> Self {
        let Some(&(left, top, w, h)) = boxes.first() else { return Self::default() };
        let (mut x0, mut y0, mut x1, mut y1) = (left, top, left + w, top + h);
        for &(left, top, w, h) in boxes {
            (x0, y0) = (x0.min(left), y0.min(top));
            (x1, y1) = (x1.max(left + w), y1.max(top + h));
        }
        let (room_x, room_y) =
            ((width - 2.0 * FIT_MARGIN).max(1.0), (height - 2.0 * FIT_MARGIN).max(1.0));
        let zoom = (room_x / (x1 - x0)).min(room_y / (y1 - y0)).clamp(ZOOM.0, 1.0);
        Self {
            pan_x: (width - (x1 - x0) * zoom) / 2.0 - x0 * zoom,
            pan_y: (height - (y1 - y0) * zoom) / 2.0 - y0 * zoom,
            zoom,
        }
    }
}

/// The room a fitted view leaves around the flow, in screen pixels.
const FIT_MARGIN: f64 = 24.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_sit_on_the_sides_row_by_row() {
        let at = Position { left: 100.0, top: 50.0 };
        assert_eq!(input_point(at, 0), (100.0, 50.0 + HEADER + PORT_ROW / 2.0));
        assert_eq!(output_point(at, 1), (100.0 + NODE_WIDTH, 50.0 + HEADER + PORT_ROW * 1.5));
        assert_eq!(node_height(0, 0), HEADER + PORT_ROW + FOOTER, "room for one row at least");
        assert_eq!(node_height(1, 3), HEADER + 3.0 * PORT_ROW + FOOTER);
    }

    #[test]
    fn edges_curve_out_of_outputs_into_inputs() {
        assert_eq!(
            edge_path((0.0, 0.0), (200.0, 40.0)),
            "M 0.0 0.0 C 100.0 0.0, 100.0 40.0, 200.0 40.0"
        );
        // A loop back to the left still leaves rightwards.
        assert!(edge_path((200.0, 0.0), (0.0, 0.0)).starts_with("M 200.0 0.0 C 300.0"));
    }

    #[test]
    fn zooming_keeps_the_point_under_the_pointer() {
        let view = View { pan_x: 30.0, pan_y: -20.0, zoom: 1.0 };
        let before = view.to_canvas(400.0, 300.0);
        let zoomed = view.zoom_at(400.0, 300.0, 1.5);
        let after = zoomed.to_canvas(400.0, 300.0);
        assert!((before.left - after.left).abs() < 1e-9 && (before.top - after.top).abs() < 1e-9);
        assert_eq!(View::default().zoom_at(0.0, 0.0, 100.0).zoom, 3.0, "clamped");
    }

    #[test]
    fn a_fitted_view_shows_every_node_whole_and_centred() {
        // The image mirror's spread: 1830 × 800 canvas units into 810 × 666 pixels.
        let boxes = [(40.0, 80.0, NODE_WIDTH, 96.0), (1640.0, 720.0, NODE_WIDTH, 160.0)];
        let view = View::fit(&boxes, 810.0, 666.0);
        let (top_left, bottom_right) = (view.to_canvas(0.0, 0.0), view.to_canvas(810.0, 666.0));
        assert!(top_left.left < 40.0 && top_left.top < 80.0, "{top_left:?}");
        assert!(bottom_right.left > 1830.0 && bottom_right.top > 880.0, "{bottom_right:?}");
        let width_shown = 1790.0 * view.zoom;
        assert!((810.0 - 2.0 * FIT_MARGIN - width_shown).abs() < 1e-6, "the wider side fills");
        // One small node stays at 100%, in the middle.
        let view = View::fit(&[(100.0, 100.0, 190.0, 80.0)], 800.0, 600.0);
        assert_eq!(view, View { pan_x: 205.0, pan_y: 160.0, zoom: 1.0 });
        assert_eq!(View::fit(&[], 800.0, 600.0), View::default(), "nothing to fit");
    }
}
