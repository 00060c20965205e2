//! The shop's page state machine (the original `SimServer.receive` dispatch) and the text
//! observation (`observation_mode="text"`: the visible texts of the page, stripped, joined with
//! " [SEP] ").

use super::catalog::Catalog;

/// Products per results page (`PRODUCT_WINDOW`).
pub const RESULTS_PER_PAGE: usize = 10;

/// The item sub-pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubPage {
    Description,
    Features,
    Reviews,
    Attributes,
}

impl SubPage {
    /// Button label; the clickable is its lower-case form.
    pub fn label(self) -> &'static str {
        match self {
            SubPage::Description => "Description",
            SubPage::Features => "Features",
            SubPage::Reviews => "Reviews",
            SubPage::Attributes => "Attributes",
        }
    }

    fn from_clickable(text: &str) -> Option<SubPage> {
        [
            SubPage::Description,
            SubPage::Features,
            SubPage::Reviews,
            SubPage::Attributes,
        ]
        .into_iter()
        .find(|s| s.label().eq_ignore_ascii_case(text))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The search box with the instruction.
    Start,
    /// One page of search results.
    Results,
    /// A product with its options and buttons.
    Item,
    Sub(SubPage),
    /// After Buy Now.
    Done,
}

/// What a clickable text on the current page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clickable {
    /// The start page's search button (never clickable through `click[...]`).
    Search,
    BackToSearch,
    NextPage,
    PrevPage,
    /// A product link on the results page (catalog position).
    Product(usize),
    SubPage(SubPage),
    BuyNow,
    /// An option value of the option group at this position of the product's options.
    OptionValue(usize),
}

/// The browsing session: where the agent is and what it has chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The page on screen.
    pub page: Page,
    /// The last search text (lower-cased), shown nowhere but kept for clarity of forks.
    pub query: String,
    /// Catalog positions of the top hits of the last search, best first.
    pub results: Vec<usize>,
    /// 1-based results page.
    pub page_num: usize,
    /// The product being viewed.
    pub product: Option<usize>,
    /// Chosen options (group name, value), in first-choice order like the original's dict.
    pub options: Vec<(String, String)>,
}

impl Session {
    pub fn start() -> Session {
        Session {
            page: Page::Start,
            query: String::new(),
            results: Vec::new(),
            page_num: 1,
            product: None,
            options: Vec::new(),
        }
    }

    /// The results shown on the current results page.
    pub fn visible_results(&self) -> &[usize] {
        let lo = ((self.page_num.max(1) - 1) * RESULTS_PER_PAGE).min(self.results.len());
        let hi = (self.page_num * RESULTS_PER_PAGE).min(self.results.len());
        &self.results[lo..hi]
    }

    /// Show results page `page_num` of the last search; like the original's `search_results`
    /// handler this forgets the product and its chosen options.
    fn show_results(&mut self, page_num: usize) {
        self.page = Page::Results;
        self.page_num = page_num;
        self.product = None;
        self.options.clear();
    }

    /// `search[query]` (query already lower-cased), allowed from any page.
    pub fn search(&mut self, catalog: &Catalog, query: &str) {
        self.query = query.to_owned();
        self.results = catalog
            .index
            .search(query)
            .into_iter()
            .map(|d| d as usize)
            .collect();
        self.show_results(1);
    }

    /// The clickables of the current page as the original's `get_available_actions` collects
    /// them: buttons, then product links (texts lower-cased), then option values (as they
    /// are), a later equal text replacing an earlier one's target but keeping its place.
    pub fn clickables(&self, catalog: &Catalog, show_attributes: bool) -> Vec<(String, Clickable)> {
        let mut out: Vec<(String, Clickable)> = Vec::new();
        let mut add = |text: String, what: Clickable| match out.iter_mut().find(|(t, _)| *t == text)
        {
            Some(slot) => slot.1 = what,
            None => out.push((text, what)),
        };
        match self.page {
            Page::Start => add("search".into(), Clickable::Search),
            Page::Results => {
                add("back to search".into(), Clickable::BackToSearch);
                if self.page_num > 1 {
                    add("< prev".into(), Clickable::PrevPage);
                }
                if self.page_num * RESULTS_PER_PAGE < self.results.len() {
                    add("next >".into(), Clickable::NextPage);
                }
                for &p in self.visible_results() {
                    add(
                        catalog.products[p].asin.to_lowercase(),
                        Clickable::Product(p),
                    );
                }
            }
            Page::Item => {
                add("back to search".into(), Clickable::BackToSearch);
                add("< prev".into(), Clickable::PrevPage);
                let mut subs = vec![SubPage::Description, SubPage::Features, SubPage::Reviews];
                if show_attributes {
                    subs.push(SubPage::Attributes);
                }
                for s in subs {
                    add(s.label().to_lowercase(), Clickable::SubPage(s));
                }
                add("buy now".into(), Clickable::BuyNow);
                if let Some(p) = self.product {
                    for (g, (_, values)) in catalog.products[p].options.iter().enumerate() {
                        for v in values {
                            add(v.clone(), Clickable::OptionValue(g));
                        }
                    }
                }
            }
            Page::Sub(_) => {
                add("back to search".into(), Clickable::BackToSearch);
                add("< prev".into(), Clickable::PrevPage);
            }
            Page::Done => {}
        }
        out
    }

    /// `click[text]` (text lower-cased). Returns false for a no-op: not a clickable of this
    /// page, or the search button. Buy Now moves to `Done`; the caller computes the reward.
    pub fn click(&mut self, catalog: &Catalog, show_attributes: bool, text: &str) -> bool {
        if text == "search" {
            return false;
        }
        let Some(what) = self
            .clickables(catalog, show_attributes)
            .into_iter()
            .find(|(t, _)| t == text)
            .map(|(_, w)| w)
        else {
            return false;
        };
        // The original dispatches on the clicked text first, then on the clickable's kind.
        match (text, self.page) {
            ("buy now", _) => self.page = Page::Done,
            ("back to search", _) => *self = Session::start(),
            ("next >", Page::Results) => self.show_results(self.page_num + 1),
            ("< prev", Page::Results) => self.show_results(self.page_num.saturating_sub(1).max(1)),
            ("< prev", Page::Sub(_)) => self.page = Page::Item,
            ("< prev", Page::Item) => self.show_results(self.page_num),
            _ => {
                if let Some(sub) = SubPage::from_clickable(text) {
                    self.page = Page::Sub(sub);
                    return true;
                }
                match what {
                    Clickable::Product(p) => self.product = Some(p),
                    Clickable::OptionValue(g) => {
                        let Some(p) = self.product else { return false };
                        let name = &catalog.products[p].options[g].0;
                        match self.options.iter_mut().find(|(n, _)| n == name) {
                            Some(slot) => slot.1 = text.to_owned(),
                            None => self.options.push((name.clone(), text.to_owned())),
                        }
                    }
                    _ if self.product.is_none() => return false,
                    _ => {}
                }
                self.page = Page::Item;
            }
        }
        true
    }

    /// The text observation of the current page.
    pub fn render(
        &self,
        catalog: &Catalog,
        instruction: &str,
        show_attributes: bool,
        reward: f64,
    ) -> String {
        let mut t = Texts(String::with_capacity(2048));
        let header = |t: &mut Texts| {
            t.push("Instruction:");
            t.push(instruction);
            t.push("Back to Search");
        };
        match self.page {
            Page::Start => {
                t.push("WebShop");
                t.push("Instruction:");
                t.push(instruction);
                t.push("Search");
            }
            Page::Results => {
                header(&mut t);
                t.push(&format!(
                    "Page {} (Total results: {})",
                    self.page_num,
                    self.results.len()
                ));
                if self.page_num > 1 {
                    t.push("< Prev");
                }
                if self.page_num * RESULTS_PER_PAGE < self.results.len() {
                    t.push("Next >");
                }
                for &p in self.visible_results() {
                    let product = &catalog.products[p];
                    t.push(&product.asin);
                    t.push(&product.title);
                    t.push(&product.price_tag);
                }
            }
            Page::Item | Page::Sub(_) => {
                header(&mut t);
                t.push("< Prev");
                if let Some(p) = self.product {
                    render_product(&mut t, &catalog.products[p], self.page, show_attributes);
                }
            }
            Page::Done => {
                t.push("Thank you for shopping with us!");
                t.push("Your score (min 0.0, max 1.0)");
                t.push(&super::catalog::py_float(reward));
            }
        }
        t.0
    }
}

/// The visible texts of a page: each stripped, empty ones left out, joined with " [SEP] ".
struct Texts(String);

impl Texts {
    fn push(&mut self, text: &str) {
        let text = super::fuzz::py_strip(text);
        if text.is_empty() {
            return;
        }
        if !self.0.is_empty() {
            self.0.push_str(" [SEP] ");
        }
        self.0.push_str(text);
    }
}

/// The product part of an item page or one of its sub-pages.
fn render_product(
    t: &mut Texts,
    product: &super::catalog::Product,
    page: Page,
    show_attributes: bool,
) {
    match page {
        Page::Sub(SubPage::Description) => t.push(&product.description),
        Page::Sub(SubPage::Features) => product.bullet_points.iter().for_each(|b| t.push(b)),
        Page::Sub(SubPage::Reviews) => product.reviews.iter().for_each(|r| t.push(r)),
        Page::Sub(SubPage::Attributes) => {
            product.attributes.iter().for_each(|a| t.push(a));
            t.push(&product.category);
            t.push(&product.query);
            t.push(&product.product_category);
        }
        _ => {
            for (name, values) in &product.options {
                t.push(name);
                values.iter().for_each(|v| t.push(v));
            }
            t.push(&product.title);
            t.push(&format!("Price: {}", product.price_tag));
            t.push(&format!("Rating: {}", product.rating));
            t.push("Description");
            t.push("Features");
            t.push("Reviews");
            if show_attributes {
                t.push("Attributes");
            }
            t.push("Buy Now");
        }
    }
}
