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
}

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
}
