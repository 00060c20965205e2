//! WebShop (Yao et al., 2022), offline.

pub mod fuzz;
pub mod reward;
