//! The statistics of a map, defined once: the value columns of the `stats` table.
//!
//! Each [`Statistic`] has its column (name, type, description), its host computation (from the
//! one pass layerwise makes over a map, [`HostPass`]) and its graph computation (ONNX nodes
//! appended to the model for `[run] reduce = "graph"`, built through [`Graph`]). The list drives
//! the host reducer, the graph reducer (one `[N, C, S]` output, in list order), the `stats`
//! schema (and `schemas/stats.json`, held to it by a test) and `check`'s size estimate. Adding a
//! statistic is one [`Stat`] variant, one entry of [`STATISTICS`], and its two computations.

use arrow_schema::DataType;

/// The statistics, in column order; `Stat as usize` indexes [`STATISTICS`] and [`MapStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// Mean of the map's values.
    Mean,
    /// Population standard deviation.
    Std,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Row of the first largest value.
    ArgmaxY,
    /// Column of the first largest value.
    ArgmaxX,
    /// Share of values above zero.
    FracPositive,
}

impl Stat {
    /// How many statistics there are.
    pub const COUNT: usize = STATISTICS.len();
}

/// The type of a statistic's column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// A 32-bit float.
    Float32,
    /// A 32-bit unsigned integer.
    UInt32,
}

impl Column {
    /// Its Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            Column::Float32 => DataType::Float32,
            Column::UInt32 => DataType::UInt32,
        }
    }

    /// Bytes a value holds before encoding.
    pub fn bytes(self) -> usize {
        4
    }
}

/// What one pass over a map on the host gives every statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostPass {
    /// Values in the map.
    pub n: usize,
    /// Values in a row.
    pub width: usize,
    /// Their mean.
    pub mean: f64,
    /// Their population variance (from the squared differences from the mean).
    pub variance: f64,
    /// The smallest.
    pub min: f32,
    /// The largest.
    pub max: f32,
    /// How many are above zero.
    pub positive: u64,
    /// Row-major index of the first largest.
    pub argmax: usize,
}

/// What a statistic's graph computation is built with: the layer's maps as `[N, C, H, W]` and
/// `[N, C, H * W]`, and nodes. Every function returns the name of the tensor it made; a node
/// asked for twice under one name is made once (so statistics share their parts: `std` and
/// `mean` one mean, `argmax_y` and `argmax_x` one argmax).
pub trait Graph {
    /// The maps, `[N, C, H, W]`.
    fn maps(&self) -> String;
    /// The maps flattened, `[N, C, H * W]`.
    fn flat(&self) -> String;
    /// The width of a map, as a float scalar.
    fn width(&mut self) -> String;
    /// A float scalar.
    fn constant(&mut self, name: &str, value: f32) -> String;
    /// The `[N, C, 1]` mean of each map of an `[N, C, H, W]` tensor.
    fn map_mean(&mut self, input: &str, name: &str) -> String;
    /// An `[N, C, 1]` tensor as `[N, C, 1, 1]`, to broadcast over the maps.
    fn as_4d(&mut self, input: &str, name: &str) -> String;
    /// A reduction (`ReduceMin`, ...) of `[N, C, H * W]` over its last axis, kept: `[N, C, 1]`.
    fn reduce_flat(&mut self, op: &str, input: &str, name: &str) -> String;
    /// A node of `op` without attributes (`Sub`, `Mul`, `Sqrt`, `Floor`, ...).
    fn op(&mut self, op: &str, inputs: &[&str], name: &str) -> String;
    /// `ArgMax` of the flat maps: the first maximum's index, `[N, C, 1]`, as float.
    fn argmax(&mut self) -> String;
    /// A cast to float.
    fn float(&mut self, input: &str, name: &str) -> String;
}

/// One statistic of a map.
pub struct Statistic {
    /// Which it is.
    pub stat: Stat,
    /// Its column in `stats`.
    pub name: &'static str,
    /// Its column's type.
    pub column: Column,
    /// What it is, as `schemas/stats.json` says.
    pub description: &'static str,
    /// Its value from the host's pass over a map.
    pub host: fn(&HostPass) -> f64,
    /// The nodes that compute it per map: a `[N, C, 1]` float tensor.
    pub graph: fn(&mut dyn Graph) -> String,
    /// Its value from the graph's float, for a map of `n` values (most take it as it is).
    pub from_graph: fn(f32, usize) -> f64,
}

fn as_computed(value: f32, _: usize) -> f64 {
    f64::from(value)
}

fn graph_mean(g: &mut dyn Graph) -> String {
    let maps = g.maps();
    g.map_mean(&maps, "mean")
}

fn graph_variance(g: &mut dyn Graph) -> String {
    let mean = graph_mean(g);
    let mean = g.as_4d(&mean, "mean4");
    let maps = g.maps();
    let centred = g.op("Sub", &[&maps, &mean], "centred");
    let squares = g.op("Mul", &[&centred, &centred], "squares");
    g.map_mean(&squares, "variance")
}

fn graph_argmax_y(g: &mut dyn Graph) -> String {
    let argmax = g.argmax();
    let width = g.width();
    let row = g.op("Div", &[&argmax, &width], "argmax_div");
    g.op("Floor", &[&row], "argmax_y")
}

/// The statistics, in column order.
pub const STATISTICS: [Statistic; 7] = [
    Statistic {
        stat: Stat::Mean,
        name: "mean",
        column: Column::Float32,
        description: "Mean of the map's values (accumulated in float64).",
        host: |p| p.mean,
        graph: graph_mean,
        from_graph: as_computed,
    },
    Statistic {
        stat: Stat::Std,
        name: "std",
        column: Column::Float32,
        description: "Population standard deviation of the map's values (two passes, float64).",
        host: |p| p.variance.sqrt(),
        graph: |g| {
            let variance = graph_variance(g);
            let zero = g.constant("zero", 0.0);
            let variance = g.op("Max", &[&variance, &zero], "variance_clamped");
            g.op("Sqrt", &[&variance], "std")
        },
        from_graph: as_computed,
    },
    Statistic {
        stat: Stat::Min,
        name: "min",
        column: Column::Float32,
        description: "Smallest value.",
        host: |p| f64::from(p.min),
        graph: |g| {
            let flat = g.flat();
            g.reduce_flat("ReduceMin", &flat, "min")
        },
        from_graph: as_computed,
    },
    Statistic {
        stat: Stat::Max,
        name: "max",
        column: Column::Float32,
        description: "Largest value.",
        host: |p| f64::from(p.max),
        graph: |g| {
            let flat = g.flat();
            g.reduce_flat("ReduceMax", &flat, "max")
        },
        from_graph: as_computed,
    },
    Statistic {
        stat: Stat::ArgmaxY,
        name: "argmax_y",
        column: Column::UInt32,
        description: "Row of the first (row-major) largest value.",
        host: |p| (p.argmax / p.width.max(1)) as f64,
        graph: graph_argmax_y,
        from_graph: as_computed,
    },
    Statistic {
        stat: Stat::ArgmaxX,
        name: "argmax_x",
        column: Column::UInt32,
        description: "Column of the first (row-major) largest value.",
        host: |p| (p.argmax % p.width.max(1)) as f64,
        graph: |g| {
            let argmax = g.argmax();
            let row = graph_argmax_y(g);
            let width = g.width();
            let start = g.op("Mul", &[&row, &width], "argmax_row_start");
            g.op("Sub", &[&argmax, &start], "argmax_x")
        },
        from_graph: as_computed,
    },
    Statistic {
        stat: Stat::FracPositive,
        name: "frac_positive",
        column: Column::Float32,
        description: "Share of values greater than 0 (after a ReLU: how often the filter fires).",
        host: |p| p.positive as f64 / p.n.max(1) as f64,
        graph: |g| {
            let maps = g.maps();
            let zero = g.constant("zero", 0.0);
            let positive = g.op("Greater", &[&maps, &zero], "positive");
            let positive = g.float(&positive, "positive_float");
            g.map_mean(&positive, "frac_positive")
        },
        // Rounded to a count first, so that it equals the host's exactly.
        from_graph: |share, n| (f64::from(share) * n as f64).round() / n.max(1) as f64,
    },
];

/// The statistics of one map, indexed by [`Stat`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapStats(pub [f64; Stat::COUNT]);

impl MapStats {
    /// From the host's pass over the map.
    pub fn from_host(pass: &HostPass) -> MapStats {
        MapStats(STATISTICS.each_ref().map(|s| (s.host)(pass)))
    }

    /// From the graph's `[Stat::COUNT]` floats for one map of `n` values.
    pub fn from_graph(values: &[f32], n: usize) -> MapStats {
        let mut out = [0.0; Stat::COUNT];
        for ((o, s), &v) in out.iter_mut().zip(&STATISTICS).zip(values) {
            *o = (s.from_graph)(v, n);
        }
        MapStats(out)
    }
}

impl std::ops::Index<Stat> for MapStats {
    type Output = f64;
    fn index(&self, stat: Stat) -> &f64 {
        &self.0[stat as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_in_the_order_of_its_stats() {
        for (i, s) in STATISTICS.iter().enumerate() {
            assert_eq!(s.stat as usize, i, "{}", s.name);
        }
    }

    #[test]
    fn host_values_of_a_pass() {
        let pass = HostPass {
            n: 6,
            width: 3,
            mean: 2.0,
            variance: 4.0,
            min: -1.0,
            max: 4.0,
            positive: 4,
            argmax: 4,
        };
        let s = MapStats::from_host(&pass);
        assert_eq!(s.0, [2.0, 2.0, -1.0, 4.0, 1.0, 1.0, 4.0 / 6.0]);
        assert_eq!(s[Stat::Max], 4.0);
        let graph = MapStats::from_graph(&[2.0, 2.0, -1.0, 4.0, 1.0, 1.0, 0.6666667], 6);
        assert_eq!(graph, s, "a share is rounded to a count");
    }
}
