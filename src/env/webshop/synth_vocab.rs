//! Word lists of the synthetic catalog generator (`synth.rs`).

/// Per category: (name, category path root levels, product types, query modifiers,
/// attributes, option groups it uses).
pub struct Category {
    /// Top-level category ("beauty", ...), as the scrape names them.
    pub name: &'static str,
    /// First levels of the "A › B › C" path; the generator adds two more.
    pub path: &'static [&'static str],
    /// Product types (nouns); with a modifier they make the scrape queries.
    pub types: &'static [&'static str],
    /// Query modifiers: 10 types x 5 modifiers = 50 queries per category.
    pub modifiers: &'static [&'static str],
    /// Attribute pool for products and instructions.
    pub attributes: &'static [&'static str],
    /// Option group names in the order products take them.
    pub groups: &'static [&'static str],
}

pub const CATEGORIES: &[Category] = &[
    Category {
        name: "beauty",
        path: &["Beauty & Personal Care", "Skin Care"],
        types: &[
            "shampoo",
            "conditioner",
            "lipstick",
            "face cream",
            "nail polish",
            "hair dryer",
            "eye shadow",
            "body lotion",
            "deodorant",
            "perfume",
        ],
        modifiers: &["women's", "men's", "organic", "travel", "professional"],
        attributes: &[
            "long lasting",
            "sensitive skin",
            "paraben free",
            "cruelty free",
            "natural ingredients",
            "travel size",
            "easy apply",
            "dry skin",
            "hair growth",
            "tea tree",
            "high quality",
            "fine lines",
        ],
        groups: &["color", "size", "scent"],
    },
    Category {
        name: "electronics",
        path: &["Electronics", "Computers & Accessories"],
        types: &[
            "headphones",
            "phone case",
            "charger",
            "speaker",
            "keyboard",
            "mouse",
            "usb cable",
            "tablet stand",
            "power bank",
            "webcam",
        ],
        modifiers: &["wireless", "portable", "gaming", "bluetooth", "compact"],
        attributes: &[
            "fast charging",
            "noise cancelling",
            "high definition",
            "easy install",
            "long battery life",
            "water resistant",
            "usb port",
            "heavy duty",
            "light weight",
            "hands free",
            "high speed",
            "plug play",
        ],
        groups: &["color", "size", "style"],
    },
    Category {
        name: "fashion",
        path: &["Clothing, Shoes & Jewelry", "Women"],
        types: &[
            "dress", "sneakers", "t-shirt", "jeans", "hoodie", "sandals", "jacket", "socks",
            "leggings", "blouse",
        ],
        modifiers: &["women's", "men's", "casual", "summer", "slim fit"],
        attributes: &[
            "machine wash",
            "slim fit",
            "long sleeve",
            "rubber sole",
            "daily wear",
            "button closure",
            "elastic waist",
            "polyester spandex",
            "short sleeve",
            "relaxed fit",
            "classic fit",
            "hand wash",
        ],
        groups: &["color", "size", "fit type"],
    },
    Category {
        name: "garden",
        path: &["Home & Kitchen", "Furniture"],
        types: &[
            "console table",
            "bookshelf",
            "floor lamp",
            "curtains",
            "area rug",
            "bar stool",
            "coffee table",
            "wall mirror",
            "bed frame",
            "storage cabinet",
        ],
        modifiers: &["modern", "rustic", "outdoor", "living room", "bedroom"],
        attributes: &[
            "living room",
            "easy assemble",
            "solid wood",
            "easy clean",
            "space saving",
            "mid century",
            "non slip",
            "storage space",
            "stainless steel",
            "dining room",
            "wood finish",
            "heavy duty",
        ],
        groups: &["color", "size", "style"],
    },
    Category {
        name: "grocery",
        path: &["Grocery & Gourmet Food", "Snacks"],
        types: &[
            "coffee",
            "green tea",
            "protein bar",
            "dark chocolate",
            "olive oil",
            "trail mix",
            "honey",
            "pasta sauce",
            "beef jerky",
            "granola",
        ],
        modifiers: &["organic", "gluten free", "sugar free", "keto", "bulk"],
        attributes: &[
            "gluten free",
            "non gmo",
            "low calorie",
            "sugar free",
            "ready eat",
            "natural flavors",
            "high protein",
            "low carb",
            "plant based",
            "individually wrapped",
            "artificial colors",
            "caffeine free",
        ],
        groups: &["flavor name", "size"],
    },
];

pub const LEVEL_WORDS: &[&str] = &[
    "Accessories",
    "Sets",
    "Essentials",
    "Collections",
    "Supplies",
    "Basics",
    "Specialty",
    "Classics",
];
pub const COLORS: &[&str] = &[
    "black",
    "white",
    "navy blue",
    "grey",
    "red",
    "pink",
    "beige",
    "army green",
    "khaki",
    "brown",
    "light blue",
    "wine red",
    "rose gold",
    "silver",
];
pub const SIZES: &[&str] = &[
    "x-small", "small", "medium", "large", "x-large", "xx-large", "3x-large", "one size",
];
pub const FLAVORS: &[&str] = &[
    "vanilla",
    "chocolate",
    "original",
    "mint",
    "caramel",
    "strawberry",
    "honey",
    "sea salt",
];
pub const STYLES: &[&str] = &[
    "classic", "modern", "vintage", "deluxe", "basic", "pro", "mini", "standard",
];
pub const ADJECTIVES: &[&str] = &[
    "premium",
    "durable",
    "lightweight",
    "soft",
    "elegant",
    "comfortable",
    "portable",
    "adjustable",
    "stylish",
    "natural",
];
/// Nouns that fill titles after the product type (each a noun for the type reward).
pub const FILLER_NOUNS: &[&str] = &[
    "set", "pack", "gift", "kit", "design", "home", "office", "travel", "party", "holiday",
    "storage", "everyday",
];
pub const AUDIENCES: &[&str] = &["women", "men", "kids", "adults", "girls", "boys", "family"];
pub const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ra", "ve", "zo", "ti", "na", "qu", "br", "el", "xo",
];
