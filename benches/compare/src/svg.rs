//! A grouped bar chart as plain SVG text: throughput per system and record size (W1, W2),
//! medians with min–max whiskers, on a logarithmic axis.

use std::fmt::Write;

pub struct Bar {
    pub system: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub struct Group {
    pub label: String,
    pub bars: Vec<Bar>,
}

const COLORS: [&str; 8] = [
    "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#7f7f7f", "#c5b0d5", "#bcbd22",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn chart(title: &str, unit: &str, systems: &[&str], groups: &[Group]) -> String {
    let (width, height) = (960.0, 520.0);
    let (left, right, top, bottom) = (80.0, 180.0, 50.0, 70.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let values: Vec<f64> = groups
        .iter()
        .flat_map(|g| g.bars.iter().flat_map(|b| [b.min, b.max, b.median]))
        .filter(|v| *v > 0.0)
        .collect();
    // Without data (a run without W1 and W2), an axis from 1 to 10 rather than from infinity.
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let lo = if lo.is_finite() { lo.max(1e-9) } else { 1.0 };
    let hi = values.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
    let (lo_exp, hi_exp) = (lo.log10().floor(), hi.log10().ceil());
    let y = |v: f64| {
        let v = v.max(10f64.powf(lo_exp));
        top + plot_h - (v.log10() - lo_exp) / (hi_exp - lo_exp) * plot_h
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="16">{}</text>"#,
        left + plot_w / 2.0,
        escape(title)
    );
    // Grid lines and labels at every power of ten.
    let mut e = lo_exp;
    while e <= hi_exp {
        let v = 10f64.powf(e);
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#ddd"/>"##,
            left + plot_w
        );
        let label = if v >= 1.0 {
            format!("{v:.0}")
        } else {
            format!("{v}")
        };
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
            left - 6.0,
            yy + 4.0
        );
        e += 1.0;
    }
    let _ = writeln!(
        s,
        r#"<text x="18" y="{}" transform="rotate(-90 18 {})" text-anchor="middle">{} (log scale)</text>"#,
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(unit)
    );
    let group_w = plot_w / groups.len().max(1) as f64;
    for (gi, g) in groups.iter().enumerate() {
        let gx = left + gi as f64 * group_w;
        let slots = systems.len() as f64;
        let bar_w = group_w * 0.8 / slots;
        for (si, system) in systems.iter().enumerate() {
            let Some(b) = g.bars.iter().find(|b| b.system == *system) else {
                continue;
            };
            let x = gx + group_w * 0.1 + si as f64 * bar_w;
            let color = COLORS[si % COLORS.len()];
            let (y0, y1) = (y(b.median), top + plot_h);
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}: {:.0} {} (min {:.0}, max {:.0})</title></rect>"#,
                bar_w * 0.9,
                (y1 - y0).max(0.0),
                escape(system),
                b.median,
                escape(unit),
                b.min,
                b.max
            );
            let cx = x + bar_w * 0.45;
            let _ = writeln!(
                s,
                r#"<line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="black"/>"#,
                y(b.min),
                y(b.max)
            );
            let _ = writeln!(
                s,
                r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="9">{:.0}</text>"#,
                y(b.max) - 4.0,
                b.median
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            gx + group_w / 2.0,
            top + plot_h + 20.0,
            escape(&g.label)
        );
    }
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        top + plot_h,
        left + plot_w,
        top + plot_h
    );
    for (si, system) in systems.iter().enumerate() {
        let ly = top + 10.0 + si as f64 * 20.0;
        let lx = left + plot_w + 20.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{ly}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            COLORS[si % COLORS.len()],
            lx + 18.0,
            ly + 10.0,
            escape(system)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="10">bars: median of the rounds; whiskers: min–max</text>"#,
        left + plot_w / 2.0,
        height - 16.0
    );
    s.push_str("</svg>\n");
    s
}
