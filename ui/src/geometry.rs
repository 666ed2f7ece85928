//! Where things are drawn on the canvas: node boxes, their ports, the curves of edges, and the
//! conversion between screen and canvas coordinates under pan and zoom, and what of the canvas
//! is in view.

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

/// How far an edge's curve reaches out of its ends horizontally: further for longer edges, so
/// that backward edges (loops) stay readable.
fn pull(from: (f64, f64), to: (f64, f64)) -> f64 {
    ((to.0 - from.0).abs() / 2.0).max(60.0)
}

/// An SVG path from an output to an input: a curve leaving rightwards and arriving from the
/// left.
pub fn edge_path(from: (f64, f64), to: (f64, f64)) -> String {
    let pull = pull(from, to);
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

/// The area an edge's curve stays within (the hull of its control points).
pub fn edge_area(from: (f64, f64), to: (f64, f64)) -> Area {
    let pull = pull(from, to);
    Area {
        left: from.0.min(to.0 - pull),
        top: from.1.min(to.1),
        right: to.0.max(from.0 + pull),
        bottom: from.1.max(to.1),
    }
}

/// A rectangle, in canvas units or screen pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    /// Its left side.
    pub left: f64,
    /// Its top side.
    pub top: f64,
    /// Its right side.
    pub right: f64,
    /// Its bottom side.
    pub bottom: f64,
}

impl Area {
    /// The box of a node at `at`, `height` high.
    pub fn node(at: Position, height: f64) -> Self {
        Self { left: at.left, top: at.top, right: at.left + NODE_WIDTH, bottom: at.top + height }
    }

    /// Whether the two overlap.
    pub fn meets(&self, other: &Self) -> bool {
        self.left < other.right
            && other.left < self.right
            && self.top < other.bottom
            && other.top < self.bottom
    }
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

    /// The canvas area shown in a canvas of `width` × `height` screen pixels, grown by `margin`
    /// pixels on every side.
    pub fn shown(&self, width: f64, height: f64, margin: f64) -> Area {
        let (top_left, bottom_right) =
            (self.to_canvas(-margin, -margin), self.to_canvas(width + margin, height + margin));
        Area {
            left: top_left.left,
            top: top_left.top,
            right: bottom_right.left,
            bottom: bottom_right.top,
        }
    }

    /// This view panned as little as brings `area` (in screen pixels relative to the canvas)
    /// whole into a canvas of `width` × `height` pixels, with a margin; its left and top side
    /// when it is larger than the canvas.
    pub fn reveal(&self, area: Area, width: f64, height: f64) -> Self {
        let shift = |low: f64, high: f64, room: f64| {
            if low < FIT_MARGIN || high - low > room - 2.0 * FIT_MARGIN {
                FIT_MARGIN - low
            } else if high > room - FIT_MARGIN {
                room - FIT_MARGIN - high
            } else {
                0.0
            }
        };
        Self {
            pan_x: self.pan_x + shift(area.left, area.right, width),
            pan_y: self.pan_y + shift(area.top, area.bottom, height),
            ..*self
        }
    }

    /// The SVG transform of the canvas group.
    pub fn transform(&self) -> String {
        format!("translate({:.1} {:.1}) scale({:.3})", self.pan_x, self.pan_y, self.zoom)
    }

    /// The view that shows every area of `areas` (in canvas units) whole and centred in a
    /// canvas of `width` × `height` screen pixels, with a margin; never zoomed in past 100%, so
    /// a small flow keeps its size.
    pub fn fit(areas: &[Area], width: f64, height: f64) -> Self {
        let Some(&first) = areas.first() else { return Self::default() };
        let all = areas.iter().fold(first, |all, area| Area {
            left: all.left.min(area.left),
            top: all.top.min(area.top),
            right: all.right.max(area.right),
            bottom: all.bottom.max(area.bottom),
        });
        let (x0, y0, x1, y1) = (all.left, all.top, all.right, all.bottom);
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

/// The room a fitted view leaves around the flow, and a revealed area around it, in screen
/// pixels.
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
    fn an_edge_stays_within_its_area() {
        let area = edge_area((0.0, 0.0), (200.0, 40.0));
        assert_eq!(area, Area { left: 0.0, top: 0.0, right: 200.0, bottom: 40.0 });
        // A loop back to the left reaches out past both of its ends.
        let area = edge_area((200.0, 50.0), (0.0, 0.0));
        assert_eq!(area, Area { left: -100.0, top: 0.0, right: 300.0, bottom: 50.0 });
        assert!(area.meets(&Area { left: 250.0, top: 40.0, right: 260.0, bottom: 60.0 }));
        assert!(
            !area.meets(&Area { left: 300.0, top: 0.0, right: 400.0, bottom: 50.0 }),
            "sides touching"
        );
    }

    #[test]
    fn the_shown_area_follows_pan_and_zoom() {
        let view = View { pan_x: 100.0, pan_y: -50.0, zoom: 0.5 };
        let shown = view.shown(800.0, 600.0, 0.0);
        assert_eq!(shown, Area { left: -200.0, top: 100.0, right: 1400.0, bottom: 1300.0 });
        let node = Area::node(Position { left: 1390.0, top: 1290.0 }, 80.0);
        assert!(shown.meets(&node), "a node at the corner, partly in view");
        assert!(!shown.meets(&Area::node(Position { left: 1400.0, top: 0.0 }, 80.0)));
        assert_eq!(view.shown(800.0, 600.0, 10.0).left, -220.0, "the margin in screen pixels");
    }

    #[test]
    fn revealing_pans_as_little_as_shows_the_whole_area() {
        let view = View { pan_x: 10.0, pan_y: 20.0, zoom: 2.0 };
        let inside = Area { left: 100.0, top: 100.0, right: 300.0, bottom: 200.0 };
        assert_eq!(view.reveal(inside, 800.0, 600.0), view, "already in view");
        let right = Area { left: 700.0, top: 100.0, right: 900.0, bottom: 200.0 };
        let moved = view.reveal(right, 800.0, 600.0);
        assert_eq!((moved.pan_x, moved.pan_y, moved.zoom), (10.0 - 100.0 - FIT_MARGIN, 20.0, 2.0));
        let above = Area { left: 100.0, top: -500.0, right: 300.0, bottom: -400.0 };
        assert_eq!(view.reveal(above, 800.0, 600.0).pan_y, 20.0 + 500.0 + FIT_MARGIN);
        // Wider than the canvas: its left side in view.
        let wide = Area { left: -100.0, top: 100.0, right: 2000.0, bottom: 200.0 };
        assert_eq!(view.reveal(wide, 800.0, 600.0).pan_x, 10.0 + 100.0 + FIT_MARGIN);
    }

    #[test]
    fn a_fitted_view_shows_every_node_whole_and_centred() {
        // The image mirror's spread: 1830 × 800 canvas units into 810 × 666 pixels.
        let boxes = [
            Area::node(Position { left: 40.0, top: 80.0 }, 96.0),
            Area::node(Position { left: 1640.0, top: 720.0 }, 160.0),
        ];
        let view = View::fit(&boxes, 810.0, 666.0);
        let (top_left, bottom_right) = (view.to_canvas(0.0, 0.0), view.to_canvas(810.0, 666.0));
        assert!(top_left.left < 40.0 && top_left.top < 80.0, "{top_left:?}");
        assert!(bottom_right.left > 1830.0 && bottom_right.top > 880.0, "{bottom_right:?}");
        let width_shown = 1790.0 * view.zoom;
        assert!((810.0 - 2.0 * FIT_MARGIN - width_shown).abs() < 1e-6, "the wider side fills");
        // One small node stays at 100%, in the middle.
        let view =
            View::fit(&[Area::node(Position { left: 100.0, top: 100.0 }, 80.0)], 800.0, 600.0);
        assert_eq!(view, View { pan_x: 205.0, pan_y: 160.0, zoom: 1.0 });
        assert_eq!(View::fit(&[], 800.0, 600.0), View::default(), "nothing to fit");
    }
}
