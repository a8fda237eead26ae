//! The output tables: their Arrow schemas (the Parquet contract, documented in `schemas/`)
//! and typed row builders that the reduce stage fills.

use std::sync::{Arc, LazyLock};

use arrow_array::builder::{
    FixedSizeListBuilder, Float16Builder, Float32Builder, ListBuilder, StringBuilder,
    UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::config::MapDtype;
use crate::model::statistics::{Column, MapStats, STATISTICS};

/// The tables of a run, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// One row per listed file.
    Images,
    /// One row per image, layer and channel.
    Stats,
    /// One row per image, layer and kept channel.
    Maps,
    /// One row per image and rank-2 layer.
    Vectors,
    /// Per part, one row per channel of a `top_k` layer and rank.
    Top,
    /// One row per image, layer with `positions` and position: the vector across channels.
    Positions,
}

/// What a run decides of the tables' list columns: element types, and the length of the
/// `positions` vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    /// `maps.values` elements.
    pub map_dtype: MapDtype,
    /// `positions.values` elements.
    pub positions_dtype: MapDtype,
    /// `positions.values` length: the channels of the layers with positions (1 when no layer
    /// has any, for the empty files).
    pub positions_dim: usize,
}

impl Default for Formats {
    fn default() -> Formats {
        Formats {
            map_dtype: MapDtype::Float32,
            positions_dtype: MapDtype::Float16,
            positions_dim: 1,
        }
    }
}

impl Table {
    /// How many tables there are.
    pub const COUNT: usize = 6;

    /// Every table.
    pub const ALL: [Table; Table::COUNT] = [
        Table::Images,
        Table::Stats,
        Table::Maps,
        Table::Vectors,
        Table::Top,
        Table::Positions,
    ];

    /// The table's folder name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Images => "images",
            Table::Stats => "stats",
            Table::Maps => "maps",
            Table::Vectors => "vectors",
            Table::Top => "top",
            Table::Positions => "positions",
        }
    }

    /// The order of the rows in each part file, as recorded in its key-value metadata.
    pub fn row_order(self) -> &'static str {
        match self {
            Table::Images => "image_id",
            Table::Stats => "image_id, then layer (in config order), then channel",
            Table::Maps => "image_id, then layer (in config order), then channel (in `keep` order)",
            Table::Vectors => "image_id, then layer (in config order)",
            Table::Top => "layer (in config order), then channel, then rank (best first)",
            Table::Positions => "image_id, then layer (in config order), then position",
        }
    }

    /// Whether the rows are in ascending `image_id` order (the first column), recorded as the
    /// files' Parquet sorting column.
    pub fn sorted_by_image_id(self) -> bool {
        self != Table::Top
    }

    /// The table's schema, its list columns as `formats` says.
    pub fn schema(self, formats: &Formats) -> SchemaRef {
        match self {
            Table::Images => IMAGES.clone(),
            Table::Stats => STATS.clone(),
            Table::Maps => match formats.map_dtype {
                MapDtype::Float32 => MAPS_F32.clone(),
                MapDtype::Float16 => MAPS_F16.clone(),
            },
            Table::Vectors => VECTORS.clone(),
            Table::Top => TOP.clone(),
            Table::Positions => positions_schema(formats.positions_dtype, formats.positions_dim),
        }
    }
}

/// The Arrow type of `dtype` elements.
fn element_type(dtype: MapDtype) -> DataType {
    match dtype {
        MapDtype::Float32 => DataType::Float32,
        MapDtype::Float16 => DataType::Float16,
    }
}

/// The `positions` schema: `values` a `fixed_size_list<dtype>[dim]`, so that its flat values
/// reshape to `[rows, dim]` without a copy.
fn positions_schema(dtype: MapDtype, dim: usize) -> SchemaRef {
    let mut fields = id_layer().to_vec();
    fields.push(Field::new("position", DataType::UInt32, false));
    fields.push(Field::new("y", DataType::UInt32, true));
    fields.push(Field::new("x", DataType::UInt32, true));
    let item = Arc::new(Field::new_list_field(element_type(dtype), false));
    let values = DataType::FixedSizeList(item, dim as i32);
    fields.push(Field::new("values", values, false));
    Arc::new(Schema::new(fields))
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, false)))
}

fn id_layer() -> [Field; 2] {
    [
        Field::new("image_id", DataType::UInt64, false),
        Field::new("layer", DataType::Utf8, false),
    ]
}

static IMAGES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("image_id", DataType::UInt64, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, true),
        Field::new("width", DataType::UInt32, true),
        Field::new("height", DataType::UInt32, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, true),
        Field::new("key", DataType::Utf8, true),
    ]))
});

static STATS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = id_layer().to_vec();
    for name in ["channel", "height", "width"] {
        fields.push(Field::new(name, DataType::UInt32, false));
    }
    for s in &STATISTICS {
        fields.push(Field::new(s.name, s.column.data_type(), false));
    }
    Arc::new(Schema::new(fields))
});

fn maps_schema(item: DataType) -> SchemaRef {
    let mut fields = id_layer().to_vec();
    for name in ["channel", "height", "width"] {
        fields.push(Field::new(name, DataType::UInt32, false));
    }
    fields.push(Field::new("values", list_of(item), false));
    Arc::new(Schema::new(fields))
}

static MAPS_F32: LazyLock<SchemaRef> = LazyLock::new(|| maps_schema(DataType::Float32));
static MAPS_F16: LazyLock<SchemaRef> = LazyLock::new(|| maps_schema(DataType::Float16));

static VECTORS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = id_layer().to_vec();
    fields.push(Field::new("values", list_of(DataType::Float32), false));
    Arc::new(Schema::new(fields))
});

static TOP: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("layer", DataType::Utf8, false),
        Field::new("channel", DataType::UInt32, false),
        Field::new("rank", DataType::UInt32, false),
        Field::new("image_id", DataType::UInt64, false),
        Field::new("score", DataType::Float32, false),
        Field::new("height", DataType::UInt32, false),
        Field::new("width", DataType::UInt32, false),
        Field::new("values", list_of(DataType::Float32), false),
    ]))
});

fn f32_list() -> ListBuilder<Float32Builder> {
    ListBuilder::new(Float32Builder::new())
        .with_field(Arc::new(Field::new_list_field(DataType::Float32, false)))
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema, columns).expect("builders match their schema")
}

/// Whether an image was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageStatus {
    /// Decoded and run through the model, with its size.
    Ok {
        /// Width of the file's image.
        width: u32,
        /// Height of the file's image.
        height: u32,
    },
    /// Not usable, with the reason.
    Error(String),
}

/// Which sample an `images` row is about.
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    /// Its id.
    pub image_id: u64,
    /// Its path, or its name in its shard.
    pub path: &'a str,
    /// Its label.
    pub label: Option<&'a str>,
    /// The shard it came from.
    pub source: Option<&'a str>,
    /// Its key in the shard.
    pub key: Option<&'a str>,
}

/// Rows of the `images` table.
#[derive(Debug, Default)]
pub struct ImageRows {
    image_id: UInt64Builder,
    path: StringBuilder,
    label: StringBuilder,
    width: UInt32Builder,
    height: UInt32Builder,
    status: StringBuilder,
    error: StringBuilder,
    source: StringBuilder,
    key: StringBuilder,
}

impl ImageRows {
    /// Adds one sample's row.
    pub fn push(&mut self, image: ImageRef, status: &ImageStatus) {
        self.image_id.append_value(image.image_id);
        self.path.append_value(image.path);
        self.label.append_option(image.label);
        self.source.append_option(image.source);
        self.key.append_option(image.key);
        match status {
            ImageStatus::Ok { width, height } => {
                self.width.append_value(*width);
                self.height.append_value(*height);
                self.status.append_value("ok");
                self.error.append_null();
            }
            ImageStatus::Error(message) => {
                self.width.append_null();
                self.height.append_null();
                self.status.append_value("error");
                self.error.append_value(message);
            }
        }
    }

    /// Takes the rows out as a record batch.
    pub fn finish(&mut self) -> RecordBatch {
        batch(
            IMAGES.clone(),
            vec![
                Arc::new(self.image_id.finish()),
                Arc::new(self.path.finish()),
                Arc::new(self.label.finish()),
                Arc::new(self.width.finish()),
                Arc::new(self.height.finish()),
                Arc::new(self.status.finish()),
                Arc::new(self.error.finish()),
                Arc::new(self.source.finish()),
                Arc::new(self.key.finish()),
            ],
        )
    }
}

/// Where a map sits: image, layer, channel and its size.
#[derive(Debug, Clone, Copy)]
pub struct MapKey<'a> {
    /// The image.
    pub image_id: u64,
    /// The layer's name.
    pub layer: &'a str,
    /// The channel.
    pub channel: u32,
    /// Map height.
    pub height: u32,
    /// Map width.
    pub width: u32,
}

/// Rows of the `stats` table: the map's key, then one column per statistic of
/// [`STATISTICS`].
#[derive(Debug)]
pub struct StatsRows {
    image_id: UInt64Builder,
    layer: StringBuilder,
    channel: UInt32Builder,
    height: UInt32Builder,
    width: UInt32Builder,
    values: Vec<StatColumn>,
}

/// The builder of one statistic's column.
#[derive(Debug)]
enum StatColumn {
    Float32(Float32Builder),
    UInt32(UInt32Builder),
}

impl Default for StatsRows {
    fn default() -> Self {
        StatsRows {
            image_id: UInt64Builder::new(),
            layer: StringBuilder::new(),
            channel: UInt32Builder::new(),
            height: UInt32Builder::new(),
            width: UInt32Builder::new(),
            values: STATISTICS
                .iter()
                .map(|s| match s.column {
                    Column::Float32 => StatColumn::Float32(Float32Builder::new()),
                    Column::UInt32 => StatColumn::UInt32(UInt32Builder::new()),
                })
                .collect(),
        }
    }
}

impl StatsRows {
    /// Adds one channel's statistics.
    pub fn push(&mut self, key: MapKey, s: &MapStats) {
        self.image_id.append_value(key.image_id);
        self.layer.append_value(key.layer);
        self.channel.append_value(key.channel);
        self.height.append_value(key.height);
        self.width.append_value(key.width);
        for (column, &value) in self.values.iter_mut().zip(&s.0) {
            match column {
                StatColumn::Float32(b) => b.append_value(value as f32),
                StatColumn::UInt32(b) => b.append_value(value as u32),
            }
        }
    }

    /// Takes the rows out as a record batch.
    pub fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.image_id.finish()),
            Arc::new(self.layer.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.height.finish()),
            Arc::new(self.width.finish()),
        ];
        columns.extend(self.values.iter_mut().map(|column| -> ArrayRef {
            match column {
                StatColumn::Float32(b) => Arc::new(b.finish()),
                StatColumn::UInt32(b) => Arc::new(b.finish()),
            }
        }));
        batch(STATS.clone(), columns)
    }
}

/// The `values` column of `maps`, in the chosen element type.
#[derive(Debug)]
enum MapValues {
    F32(ListBuilder<Float32Builder>),
    F16(ListBuilder<Float16Builder>),
}

/// Rows of the `maps` table.
#[derive(Debug)]
pub struct MapRows {
    image_id: UInt64Builder,
    layer: StringBuilder,
    channel: UInt32Builder,
    height: UInt32Builder,
    width: UInt32Builder,
    values: MapValues,
}

impl MapRows {
    /// Empty rows whose values are stored as `dtype`.
    pub fn new(dtype: MapDtype) -> MapRows {
        let values = match dtype {
            MapDtype::Float32 => MapValues::F32(f32_list()),
            MapDtype::Float16 => MapValues::F16(
                ListBuilder::new(Float16Builder::new())
                    .with_field(Arc::new(Field::new_list_field(DataType::Float16, false))),
            ),
        };
        MapRows {
            image_id: UInt64Builder::new(),
            layer: StringBuilder::new(),
            channel: UInt32Builder::new(),
            height: UInt32Builder::new(),
            width: UInt32Builder::new(),
            values,
        }
    }

    /// Adds one channel's map, row-major.
    pub fn push(&mut self, key: MapKey, values: &[f32]) {
        self.image_id.append_value(key.image_id);
        self.layer.append_value(key.layer);
        self.channel.append_value(key.channel);
        self.height.append_value(key.height);
        self.width.append_value(key.width);
        match &mut self.values {
            MapValues::F32(list) => {
                list.values().append_slice(values);
                list.append(true);
            }
            MapValues::F16(list) => {
                let items = list.values();
                for v in values {
                    items.append_value(f16::from_f32(*v));
                }
                list.append(true);
            }
        }
    }

    /// Takes the rows out as a record batch.
    pub fn finish(&mut self) -> RecordBatch {
        let (values, schema): (ArrayRef, _) = match &mut self.values {
            MapValues::F32(list) => (Arc::new(list.finish()), MAPS_F32.clone()),
            MapValues::F16(list) => (Arc::new(list.finish()), MAPS_F16.clone()),
        };
        batch(
            schema,
            vec![
                Arc::new(self.image_id.finish()),
                Arc::new(self.layer.finish()),
                Arc::new(self.channel.finish()),
                Arc::new(self.height.finish()),
                Arc::new(self.width.finish()),
                values,
            ],
        )
    }
}

/// Rows of the `vectors` table.
#[derive(Debug)]
pub struct VectorRows {
    image_id: UInt64Builder,
    layer: StringBuilder,
    values: ListBuilder<Float32Builder>,
}

impl Default for VectorRows {
    fn default() -> Self {
        VectorRows {
            image_id: UInt64Builder::new(),
            layer: StringBuilder::new(),
            values: f32_list(),
        }
    }
}

impl VectorRows {
    /// Adds one image's vector.
    pub fn push(&mut self, image_id: u64, layer: &str, values: impl IntoIterator<Item = f32>) {
        self.image_id.append_value(image_id);
        self.layer.append_value(layer);
        self.values.values().extend(values.into_iter().map(Some));
        self.values.append(true);
    }

    /// Takes the rows out as a record batch.
    pub fn finish(&mut self) -> RecordBatch {
        batch(
            VECTORS.clone(),
            vec![
                Arc::new(self.image_id.finish()),
                Arc::new(self.layer.finish()),
                Arc::new(self.values.finish()),
            ],
        )
    }
}

/// One row of the `top` table.
#[derive(Debug, Clone, Copy)]
pub struct TopRow<'a> {
    /// The layer's name.
    pub layer: &'a str,
    /// The channel.
    pub channel: u32,
    /// 0 for the image that scores highest.
    pub rank: u32,
    /// The image.
    pub image_id: u64,
    /// Its score (the map's max or mean, as `top_by` says).
    pub score: f32,
    /// Map height.
    pub height: u32,
    /// Map width.
    pub width: u32,
    /// The map, row-major.
    pub values: &'a [f32],
}

/// Rows of the `top` table.
#[derive(Debug)]
pub struct TopRows {
    layer: StringBuilder,
    channel: UInt32Builder,
    rank: UInt32Builder,
    image_id: UInt64Builder,
    score: Float32Builder,
    height: UInt32Builder,
    width: UInt32Builder,
    values: ListBuilder<Float32Builder>,
}

impl Default for TopRows {
    fn default() -> Self {
        TopRows {
            layer: StringBuilder::new(),
            channel: UInt32Builder::new(),
            rank: UInt32Builder::new(),
            image_id: UInt64Builder::new(),
            score: Float32Builder::new(),
            height: UInt32Builder::new(),
            width: UInt32Builder::new(),
            values: f32_list(),
        }
    }
}

impl TopRows {
    /// Adds one row.
    pub fn push(&mut self, row: TopRow) {
        self.layer.append_value(row.layer);
        self.channel.append_value(row.channel);
        self.rank.append_value(row.rank);
        self.image_id.append_value(row.image_id);
        self.score.append_value(row.score);
        self.height.append_value(row.height);
        self.width.append_value(row.width);
        self.values.values().append_slice(row.values);
        self.values.append(true);
    }

    /// Takes the rows out as a record batch.
    pub fn finish(&mut self) -> RecordBatch {
        batch(
            TOP.clone(),
            vec![
                Arc::new(self.layer.finish()),
                Arc::new(self.channel.finish()),
                Arc::new(self.rank.finish()),
                Arc::new(self.image_id.finish()),
                Arc::new(self.score.finish()),
                Arc::new(self.height.finish()),
                Arc::new(self.width.finish()),
                Arc::new(self.values.finish()),
            ],
        )
    }
}

/// Where a position is: image, layer, its index along the token axis (or `y * width + x` of a
/// map) and its place on the grid (`None` for a prefix token).
#[derive(Debug, Clone, Copy)]
pub struct PositionKey<'a> {
    /// The image.
    pub image_id: u64,
    /// The layer's name.
    pub layer: &'a str,
    /// Its index.
    pub position: u32,
    /// Its row and column on the grid, if it is on it.
    pub yx: Option<(u32, u32)>,
}

/// The `values` column of `positions`, in the chosen element type.
#[derive(Debug)]
enum PositionValues {
    F32(FixedSizeListBuilder<Float32Builder>),
    F16(FixedSizeListBuilder<Float16Builder>),
}

/// Rows of the `positions` table.
#[derive(Debug)]
pub struct PositionRows {
    image_id: UInt64Builder,
    layer: StringBuilder,
    position: UInt32Builder,
    y: UInt32Builder,
    x: UInt32Builder,
    values: PositionValues,
    dtype: MapDtype,
    dim: usize,
    /// Reused for float16 conversion.
    half: Vec<f16>,
}

impl PositionRows {
    /// Empty rows of vectors of `dim` values stored as `dtype`.
    pub fn new(dtype: MapDtype, dim: usize) -> PositionRows {
        let field = Arc::new(Field::new_list_field(element_type(dtype), false));
        let values = match dtype {
            MapDtype::Float32 => PositionValues::F32(
                FixedSizeListBuilder::new(Float32Builder::new(), dim as i32).with_field(field),
            ),
            MapDtype::Float16 => PositionValues::F16(
                FixedSizeListBuilder::new(Float16Builder::new(), dim as i32).with_field(field),
            ),
        };
        PositionRows {
            image_id: UInt64Builder::new(),
            layer: StringBuilder::new(),
            position: UInt32Builder::new(),
            y: UInt32Builder::new(),
            x: UInt32Builder::new(),
            values,
            dtype,
            dim,
            half: Vec::new(),
        }
    }

    /// Adds one position's vector (`dim` values).
    pub fn push(&mut self, key: PositionKey, values: &[f32]) {
        debug_assert_eq!(values.len(), self.dim);
        self.image_id.append_value(key.image_id);
        self.layer.append_value(key.layer);
        self.position.append_value(key.position);
        self.y.append_option(key.yx.map(|(y, _)| y));
        self.x.append_option(key.yx.map(|(_, x)| x));
        match &mut self.values {
            PositionValues::F32(list) => {
                list.values().append_slice(values);
                list.append(true);
            }
            PositionValues::F16(list) => {
                self.half.clear();
                self.half.resize(values.len(), f16::ZERO);
                self.half.convert_from_f32_slice(values);
                list.values().append_slice(&self.half);
                list.append(true);
            }
        }
    }

    /// Takes the rows out as a record batch.
    pub fn finish(&mut self) -> RecordBatch {
        let values: ArrayRef = match &mut self.values {
            PositionValues::F32(list) => Arc::new(list.finish()),
            PositionValues::F16(list) => Arc::new(list.finish()),
        };
        batch(
            positions_schema(self.dtype, self.dim),
            vec![
                Arc::new(self.image_id.finish()),
                Arc::new(self.layer.finish()),
                Arc::new(self.position.finish()),
                Arc::new(self.y.finish()),
                Arc::new(self.x.finish()),
                values,
            ],
        )
    }
}

/// The rows of every table produced by one batch of images.
#[derive(Debug)]
pub struct Rows {
    /// `images` rows.
    pub images: ImageRows,
    /// `stats` rows.
    pub stats: StatsRows,
    /// `maps` rows.
    pub maps: MapRows,
    /// `vectors` rows.
    pub vectors: VectorRows,
    /// `top` rows (filled at the end of a part).
    pub top: TopRows,
    /// `positions` rows.
    pub positions: PositionRows,
}

impl Rows {
    /// Empty rows, their list columns as `formats` says.
    pub fn new(formats: &Formats) -> Rows {
        Rows {
            images: ImageRows::default(),
            stats: StatsRows::default(),
            maps: MapRows::new(formats.map_dtype),
            vectors: VectorRows::default(),
            top: TopRows::default(),
            positions: PositionRows::new(formats.positions_dtype, formats.positions_dim),
        }
    }

    /// Takes every table's rows out, in [`Table::ALL`] order.
    pub fn finish(&mut self) -> [(Table, RecordBatch); Table::COUNT] {
        [
            (Table::Images, self.images.finish()),
            (Table::Stats, self.stats.finish()),
            (Table::Maps, self.maps.finish()),
            (Table::Vectors, self.vectors.finish()),
            (Table::Top, self.top.finish()),
            (Table::Positions, self.positions.finish()),
        ]
    }
}
