//! Units of measure: the UCUM code behind each spelling analyzers send, and the conversions
//! between a test's catalog unit and the unit an instrument reports it in.
//!
//! Codes are UCUM's (The Unified Code for Units of Measure, Regenstrief Institute,
//! <https://ucum.org>), case-sensitive as the catalog writes them. [`normalize`] maps the
//! spellings instruments use (`mg/dl`, `µmol/l`, `x10E9/L`, `mEq/L`, `mIU/L`) to one code;
//! a spelling it does not know is compared exactly, after trimming — never guessed.
//!
//! [`conversion`] relates two units of one test. Units of the same kind convert by their UCUM
//! definitions alone (g/L ↔ mg/dL, 10*9/L ↔ 10*3/uL, U/L ↔ ukat/L, kPa ↔ mm[Hg]); mass and
//! amount of substance convert only through the molar mass of a named analyte, and
//! equivalents through its charge ([`Analyte`], each with its source). A factor is kept as an
//! exact fraction of decimals and applied once, then rounded once to the catalog's places.
//!
//! This module does no IO; every answer is a function of its arguments.

use std::fmt::Write as _;

use rust_decimal::{Decimal, RoundingStrategy};

use crate::catalog::{ResultType, TestDefinition};
use crate::value::{Numeric, ReportedValue};

/// The longest unit spelling looked up; a longer one is compared exactly as sent.
pub const UNIT_LEN_MAX: usize = 32;

/// The UCUM code a unit spelling stands for: `mg/dl` → `mg/dL`, `µmol/l` → `umol/L`,
/// `x10E9/L` → `10*9/L`, `mEq/L` → `meq/L`. A spelling Cuvette does not know is returned
/// trimmed and otherwise as sent, so it only ever equals itself.
///
/// Case is folded only to find a known code, and the few spellings that mean different units
/// to different analyzers are never folded: `G/L` is giga per litre to some haematology
/// analyzers and gram per litre in UCUM's case-insensitive form, and `IU/L` is an enzyme unit
/// on old chemistry analyzers and a WHO International Unit on immunoassays.
pub fn normalize(unit: &str) -> &str {
    let unit = unit.trim();
    if unit.is_empty() {
        return unit;
    }
    let mut buf = [0u8; UNIT_LEN_MAX];
    match lookup_key(unit, &mut buf).filter(|key| !ambiguous(unit, key)).and_then(find) {
        Some(def) => def.code,
        None => unit,
    }
}

/// Whether two unit spellings name the same UCUM unit.
pub fn same_unit(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
}

/// Whether Cuvette knows this spelling (it names a unit in [`normalize`]'s table).
pub fn is_known(unit: &str) -> bool {
    unit_def(normalize(unit)).is_some()
}

/// How results of `test` sent in `instrument_unit` relate to the catalog's unit.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapping {
    /// The same unit (or none given: the catalog's unit is meant); the value is taken as sent.
    Same,
    /// Another unit Cuvette converts from: each value is converted before it is judged.
    Convert(Conversion),
    /// Another unit with no conversion to the catalog's: results cannot be taken.
    Unconvertible,
}

/// How an instrument's unit for `test` relates to the catalog's unit. An empty instrument
/// unit means the catalog's. Only numeric tests are converted: a coded value such as a
/// dipstick's "100" is a category, not a number to scale.
pub fn mapping(test: &TestDefinition, instrument_unit: &str) -> Mapping {
    // The usual case first: the mapping stores the catalog's own code.
    if instrument_unit == test.unit
        || instrument_unit.trim().is_empty()
        || same_unit(&test.unit, instrument_unit)
    {
        return Mapping::Same;
    }
    if test.result_type != ResultType::Numeric {
        return Mapping::Unconvertible;
    }
    match conversion(&test.code, &test.unit, instrument_unit) {
        Some(c) => Mapping::Convert(c),
        None => Mapping::Unconvertible,
    }
}

/// The conversion of `test_code`'s results from `instrument_unit` to `catalog_unit`, when
/// the two are different units Cuvette can relate: by their UCUM definitions when they
/// measure the same kind of quantity, else through the analyte's molar mass or charge.
/// `None` for the same unit, an unknown spelling, or no known relation.
pub fn conversion(
    test_code: &str,
    catalog_unit: &str,
    instrument_unit: &str,
) -> Option<Conversion> {
    let to = unit_def(normalize(catalog_unit))?;
    let from = unit_def(normalize(instrument_unit))?;
    if from.code == to.code || from.annotation != to.annotation {
        return None;
    }
    if from.kind == to.kind {
        let ratio = from.scale().over(to.scale());
        return Some(Conversion {
            from: from.code,
            to: to.code,
            multiply: ratio.num,
            divide: ratio.den,
            analyte: None,
            through_mass: false,
            through_charge: false,
            source: UCUM,
        });
    }
    if family(from.kind)? != family(to.kind)? {
        return None;
    }
    let analyte = analyte(test_code)?;
    let ratio = amount(from, analyte)?.over(amount(to, analyte)?);
    let uses = |kinds: &[Kind]| kinds.contains(&from.kind) || kinds.contains(&to.kind);
    Some(Conversion {
        from: from.code,
        to: to.code,
        multiply: ratio.num,
        divide: ratio.den,
        analyte: Some(analyte),
        through_mass: uses(&[MassConcentration, Mass]),
        through_charge: uses(&[EquivalentConcentration]),
        source: analyte.source,
    })
}

/// The units Cuvette converts `test_code`'s results from into `catalog_unit`, within a
/// factor of 1000 either way (so glucose in mg/dL lists mmol/L and g/L, not pmol/L), in the
/// order of the unit table.
pub fn convertible_units(test_code: &str, catalog_unit: &str) -> Vec<&'static str> {
    let (low, high) = (Decimal::new(1, 3), Decimal::from(1000));
    UNITS
        .iter()
        .filter(|u| {
            conversion(test_code, catalog_unit, u.code)
                .and_then(|c| c.factor())
                .is_some_and(|f| f >= low && f <= high)
        })
        .map(|u| u.code)
        .collect()
}

/// A conversion from an instrument's unit to the catalog's: `value × factor`, where the
/// factor is kept as an exact fraction (`multiply / divide`) so that nothing is lost before
/// the one rounding to the catalog's places.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    /// The unit the instrument sends (UCUM).
    pub from: &'static str,
    /// The catalog's unit (UCUM).
    pub to: &'static str,
    multiply: Decimal,
    divide: Decimal,
    /// The analyte whose molar mass or charge relates the two units; `None` when they are
    /// the same kind of quantity and their UCUM definitions suffice.
    pub analyte: Option<&'static Analyte>,
    through_mass: bool,
    through_charge: bool,
    /// Where the factor comes from.
    pub source: &'static str,
}

/// The source of conversions between units of one kind.
const UCUM: &str = "UCUM definitions of both units";

impl Conversion {
    /// The factor, to 28 significant digits (`None` only if it cannot be represented).
    pub fn factor(&self) -> Option<Decimal> {
        self.multiply.checked_div(self.divide).map(|f| f.normalize())
    }

    /// The analyte's molar mass (g/mol), when the conversion goes through it.
    pub fn molar_mass_g_per_mol(&self) -> Option<Decimal> {
        self.analyte.filter(|_| self.through_mass).and_then(Analyte::molar_mass_g_per_mol)
    }

    /// The ion's charge number, when the conversion goes through milliequivalents.
    pub fn charge(&self) -> Option<u8> {
        self.analyte.filter(|_| self.through_charge).and_then(|a| a.charge)
    }

    /// Converts a number at full precision; `None` if the result cannot be represented.
    pub fn convert(&self, value: Decimal) -> Option<Decimal> {
        value.checked_mul(self.multiply)?.checked_div(self.divide)
    }

    /// The value in the catalog's unit, comparator kept (`<0.5` mmol/L glucose is `<9`
    /// mg/dL), rounded once, half away from zero, to `decimals` places — or, when the test
    /// has none, to as many significant digits as were sent. Text is returned unchanged: it
    /// is not a number to convert. `None` when the number cannot be represented.
    pub fn apply(&self, value: &ReportedValue, decimals: Option<u32>) -> Option<ReportedValue> {
        let Some(n) = value.number else { return Some(value.clone()) };
        let exact = self.convert(n.value)?;
        let mut rounded = match decimals {
            Some(places) => {
                let mut r =
                    exact.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero);
                r.rescale(places);
                r
            }
            None => exact.round_sf_with_strategy(
                significant_digits(n.value),
                RoundingStrategy::MidpointAwayFromZero,
            )?,
        };
        if rounded.is_zero() {
            rounded.set_sign_positive(true);
        }
        let comparator = n.comparator.map_or("", |c| c.symbol());
        Some(ReportedValue {
            text: format!("{comparator}{rounded}"),
            number: Some(Numeric { comparator: n.comparator, value: rounded }),
        })
    }

    /// The conversion in one line for the bench: "mmol/L → mg/dL × 18.016 (glucose,
    /// C6H12O6, 180.156 g/mol; IUPAC 2021 standard atomic weights)".
    pub fn describe(&self) -> String {
        let mut s = format!("{} → {}", self.from, self.to);
        if let Some(f) = self.factor() {
            let _ = write!(s, " × {}", significant(f));
            if f < Decimal::ONE
                && let Some(inverse) = self.divide.checked_div(self.multiply)
            {
                let _ = write!(s, " (÷ {})", significant(inverse));
            }
        }
        match self.analyte {
            None => {
                let _ = write!(s, " ({})", self.source);
            }
            Some(a) => {
                let _ = write!(s, " ({}", a.substance);
                if let Some(m) = self.molar_mass_g_per_mol() {
                    let _ = write!(s, ", {m} g/mol");
                }
                if let Some(z) = self.charge() {
                    let _ = write!(s, ", charge {z}");
                }
                if self.through_mass {
                    let _ = write!(s, "; {}", a.source);
                }
                s.push(')');
            }
        }
        s
    }
}

/// A factor as the bench reads it: five significant digits, trailing zeros dropped.
fn significant(d: Decimal) -> Decimal {
    d.round_sf_with_strategy(5, RoundingStrategy::MidpointAwayFromZero).unwrap_or(d).normalize()
}

/// How many significant digits a reported number carries ("4.10" three, "0.05" one).
fn significant_digits(d: Decimal) -> u32 {
    let digits = d.mantissa().unsigned_abs().checked_ilog10().map_or(1, |l| l + 1);
    digits.max(1)
}

// ---------------------------------------------------------------------------------------------
// Analytes

/// An analyte whose results convert between mass and amount of substance (through its molar
/// mass) or between equivalents and moles (through its charge).
#[derive(Debug, PartialEq)]
pub struct Analyte {
    /// The catalog tests that measure it.
    pub codes: &'static [&'static str],
    /// What a mole of it is, as the bench reads it ("glucose, C6H12O6").
    pub substance: &'static str,
    /// Molar mass in g/mol as (mantissa, decimal places).
    molar_mass: Option<(i64, u32)>,
    /// The charge number of the ion, for milliequivalents.
    pub charge: Option<u8>,
    /// Where the molar mass or charge comes from.
    pub source: &'static str,
}

impl Analyte {
    /// Molar mass in g/mol.
    pub fn molar_mass_g_per_mol(&self) -> Option<Decimal> {
        self.molar_mass.map(|(m, places)| Decimal::new(m, places))
    }
}

/// The analyte a catalog test measures, when its results convert between mass, moles or
/// equivalents.
pub fn analyte(test_code: &str) -> Option<&'static Analyte> {
    ANALYTES.iter().find(|a| a.codes.contains(&test_code))
}

/// Molar masses of molecules are the sum over the formula of the IUPAC 2021 abridged standard
/// atomic weights (H 1.008, C 12.011, N 14.007, O 15.999, P 30.974, Cl 35.45, Co 58.933,
/// I 126.90; Pure Appl. Chem. 2022, 94(5), 573–600), checked against PubChem's computed
/// molecular weight (CID given); elements take their IUPAC 2021 standard atomic weight.
/// The values and their use are listed in `catalog/SOURCES.md` §2.
const IUPAC: &str = "IUPAC 2021 standard atomic weights";

/// Every analyte with a conversion, by the catalog tests that measure it.
pub static ANALYTES: &[Analyte] = &[
    Analyte {
        codes: &["GLU"],
        substance: "glucose, C6H12O6",
        molar_mass: Some((180_156, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 5793",
    },
    Analyte {
        codes: &["CREAT"],
        substance: "creatinine, C4H7N3O",
        molar_mass: Some((113_120, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 588",
    },
    Analyte {
        // Urea nitrogen is reported as the nitrogen's mass (mg/dL) or as urea's amount
        // (mmol/L); each urea molecule carries two nitrogen atoms.
        codes: &["BUN"],
        substance: "urea as its nitrogen, 2 × N",
        molar_mass: Some((28_014, 3)),
        charge: None,
        source: IUPAC,
    },
    Analyte {
        codes: &["CA"],
        substance: "calcium, Ca2+",
        molar_mass: Some((40_078, 3)),
        charge: Some(2),
        source: IUPAC,
    },
    Analyte {
        codes: &["MG"],
        substance: "magnesium, Mg2+",
        molar_mass: Some((24_305, 3)),
        charge: Some(2),
        source: IUPAC,
    },
    Analyte {
        // Phosphate's charge depends on pH, so it has no milliequivalents here.
        codes: &["PHOS"],
        substance: "inorganic phosphate as phosphorus, P",
        molar_mass: Some((30_974, 3)),
        charge: None,
        source: IUPAC,
    },
    Analyte {
        codes: &["URIC"],
        substance: "uric acid, C5H4N4O3",
        molar_mass: Some((168_112, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 1175",
    },
    Analyte {
        codes: &["CHOL", "HDL", "LDLD"],
        substance: "cholesterol, C27H46O",
        molar_mass: Some((386_664, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 5997",
    },
    Analyte {
        // Triglycerides are counted as triolein, the convention of the SI conversion tables.
        codes: &["TRIG"],
        substance: "triglycerides as triolein, C57H104O6",
        molar_mass: Some((885_453, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 5497163",
    },
    Analyte {
        codes: &["TBIL", "DBIL"],
        substance: "bilirubin, C33H36N4O6",
        molar_mass: Some((584_673, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 5280352",
    },
    Analyte {
        // Iron-binding capacity is reported as the iron bound.
        codes: &["FE", "TIBC"],
        substance: "iron, Fe",
        molar_mass: Some((55_845, 3)),
        charge: None,
        source: IUPAC,
    },
    Analyte {
        codes: &["NH3"],
        substance: "ammonia, NH3",
        molar_mass: Some((17_031, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 222",
    },
    Analyte {
        codes: &["LACT", "LACTA"],
        substance: "lactate as lactic acid, C3H6O3",
        molar_mass: Some((90_078, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 612",
    },
    Analyte {
        codes: &["FT4"],
        substance: "thyroxine, C15H11I4NO4",
        molar_mass: Some((776_856, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 5819",
    },
    Analyte {
        codes: &["B12"],
        substance: "cobalamin as cyanocobalamin, C63H88CoN14O14P",
        molar_mass: Some((1_355_388, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 5311498",
    },
    Analyte {
        codes: &["FOL"],
        substance: "folate as folic acid, C19H19N7O6",
        molar_mass: Some((441_404, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 135398658",
    },
    Analyte {
        codes: &["DIG"],
        substance: "digoxin, C41H64O14",
        molar_mass: Some((780_949, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 2724385",
    },
    Analyte {
        codes: &["APAP"],
        substance: "acetaminophen, C8H9NO2",
        molar_mass: Some((151_165, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 1983",
    },
    Analyte {
        codes: &["SAL"],
        substance: "salicylate as salicylic acid, C7H6O3",
        molar_mass: Some((138_122, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 338",
    },
    Analyte {
        codes: &["VANC", "VANCT"],
        substance: "vancomycin, C66H75Cl2N9O24",
        molar_mass: Some((1_449_265, 3)),
        charge: None,
        source: "IUPAC 2021 standard atomic weights; PubChem CID 14969",
    },
    Analyte {
        // Haemoglobin in mmol/L counts the monomer (one haem, a quarter of the tetramer's
        // 64 458 g/mol), as the ICSH reference method reports it.
        codes: &["HGB", "MCHC", "MCH"],
        substance: "haemoglobin monomer, Hb(Fe)",
        molar_mass: Some((161_145, 1)),
        charge: None,
        source: "ICSH reference method for haemoglobinometry (monomer 16 114.5 g/mol)",
    },
    Analyte {
        codes: &["NA"],
        substance: "sodium, Na+",
        molar_mass: None,
        charge: Some(1),
        source: "the ion's charge number",
    },
    Analyte {
        codes: &["K"],
        substance: "potassium, K+",
        molar_mass: None,
        charge: Some(1),
        source: "the ion's charge number",
    },
    Analyte {
        codes: &["CL"],
        substance: "chloride, Cl-",
        molar_mass: None,
        charge: Some(1),
        source: "the ion's charge number",
    },
    Analyte {
        codes: &["CO2", "HCO3A"],
        substance: "bicarbonate, HCO3-",
        molar_mass: None,
        charge: Some(1),
        source: "the ion's charge number",
    },
    Analyte {
        codes: &["LI"],
        substance: "lithium, Li+",
        molar_mass: None,
        charge: Some(1),
        source: "the ion's charge number",
    },
];

// ---------------------------------------------------------------------------------------------
// The unit table

/// What a unit measures. Units of one kind convert by their definitions; mass, amount and
/// equivalents convert only through an analyte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// g/L and its relatives.
    MassConcentration,
    /// mol/L and its relatives.
    SubstanceConcentration,
    /// meq/L: moles times the ion's charge.
    EquivalentConcentration,
    /// Cells per litre.
    NumberConcentration,
    /// Enzyme activity per litre (kat/L; U = umol/min).
    CatalyticConcentration,
    /// WHO International Units per litre.
    ArbitraryConcentration,
    /// Dimensionless fractions (%, L/L).
    Fraction,
    /// Pressure (Pa).
    Pressure,
    /// Mass (g).
    Mass,
    /// Amount of substance (mol).
    Amount,
    /// Volume (L).
    Volume,
    /// Known spellings with nothing to convert to ({INR}, [pH], s, mm/h, …).
    Other,
}

/// A unit Cuvette knows: its UCUM code, its kind and its size in the kind's base unit
/// (`num × 10^exp / den`: mg/dL is 1 × 10⁻² g/L; U/L is 1 × 10⁻⁶ / 60 kat/L).
struct UnitDef {
    code: &'static str,
    kind: Kind,
    num: i64,
    exp: i32,
    den: i64,
    /// A UCUM annotation that must match for a conversion (`FEU`); empty for none.
    annotation: &'static str,
    /// Other spellings, lower case without spaces, µ written `u` (see [`lookup_key`]).
    aliases: &'static [&'static str],
}

impl UnitDef {
    fn scale(&self) -> Ratio {
        let pow = |e: u32| Decimal::from(10i64.pow(e));
        let num = if self.exp >= 0 {
            Decimal::from(self.num) * pow(self.exp.unsigned_abs())
        } else {
            Decimal::new(self.num, self.exp.unsigned_abs())
        };
        Ratio { num, den: Decimal::from(self.den) }
    }
}

const fn unit(code: &'static str, kind: Kind, num: i64, exp: i32) -> UnitDef {
    UnitDef { code, kind, num, exp, den: 1, annotation: "", aliases: &[] }
}

const fn alias(mut def: UnitDef, aliases: &'static [&'static str]) -> UnitDef {
    def.aliases = aliases;
    def
}

const fn annotated(mut def: UnitDef, annotation: &'static str) -> UnitDef {
    def.annotation = annotation;
    def
}

use Kind::*;

/// Every unit Cuvette normalises to and converts between. Sizes are UCUM's: prefixes are
/// powers of ten; `U` = umol/min and `kat` = mol/s (so U/L = 1/60 ukat/L); `m[Hg]` = 133.3220
/// kPa; `eq` is counted here through the ion's charge (UCUM defines `eq` as `mol`, which
/// holds for a charge of 1 only).
static UNITS: &[UnitDef] = &[
    // Mass concentration, base g/L.
    unit("g/L", MassConcentration, 1, 0),
    unit("g/dL", MassConcentration, 1, 1),
    unit("mg/mL", MassConcentration, 1, 0),
    unit("mg/dL", MassConcentration, 1, -2),
    unit("mg/L", MassConcentration, 1, -3),
    unit("ug/dL", MassConcentration, 1, -5),
    unit("ug/mL", MassConcentration, 1, -3),
    unit("ug/L", MassConcentration, 1, -6),
    unit("ng/mL", MassConcentration, 1, -6),
    unit("ng/dL", MassConcentration, 1, -8),
    unit("ng/L", MassConcentration, 1, -9),
    unit("pg/mL", MassConcentration, 1, -9),
    // D-dimer as fibrinogen-equivalent units: converts only to other FEU units.
    alias(
        annotated(unit("ug/mL{FEU}", MassConcentration, 1, -3), "FEU"),
        &["ug/mlfeu", "ugfeu/ml"],
    ),
    alias(annotated(unit("mg/L{FEU}", MassConcentration, 1, -3), "FEU"), &["mg/lfeu", "mgfeu/l"]),
    alias(annotated(unit("ug/L{FEU}", MassConcentration, 1, -6), "FEU"), &["ug/lfeu", "ugfeu/l"]),
    alias(
        annotated(unit("ng/mL{FEU}", MassConcentration, 1, -6), "FEU"),
        &["ng/mlfeu", "ngfeu/ml"],
    ),
    // Substance concentration, base mol/L.
    unit("mol/L", SubstanceConcentration, 1, 0),
    unit("mmol/L", SubstanceConcentration, 1, -3),
    unit("umol/L", SubstanceConcentration, 1, -6),
    unit("nmol/L", SubstanceConcentration, 1, -9),
    unit("pmol/L", SubstanceConcentration, 1, -12),
    // Equivalents, base eq/L.
    alias(unit("meq/L", EquivalentConcentration, 1, -3), &["mequiv/l"]),
    // Number concentration, base /L.
    alias(unit("10*9/L", NumberConcentration, 1, 9), &["/nl"]),
    alias(unit("10*3/uL", NumberConcentration, 1, 9), &["k/ul", "thou/ul", "10*3/mm3"]),
    alias(unit("10*12/L", NumberConcentration, 1, 12), &["/pl"]),
    alias(unit("10*6/uL", NumberConcentration, 1, 12), &["m/ul", "mil/ul", "mill/ul", "10*6/mm3"]),
    alias(unit("/uL", NumberConcentration, 1, 6), &["cells/ul", "/mm3"]),
    unit("10*6/L", NumberConcentration, 1, 6),
    // Catalytic concentration, base kat/L.
    UnitDef { den: 60, ..unit("U/L", CatalyticConcentration, 1, -6) },
    unit("ukat/L", CatalyticConcentration, 1, -6),
    unit("nkat/L", CatalyticConcentration, 1, -9),
    // WHO International Units, base [IU]/L.
    unit("[IU]/L", ArbitraryConcentration, 1, 0),
    alias(unit("m[IU]/L", ArbitraryConcentration, 1, -3), &["miu/l"]),
    alias(unit("u[IU]/mL", ArbitraryConcentration, 1, -3), &["uiu/ml"]),
    alias(unit("m[IU]/mL", ArbitraryConcentration, 1, 0), &["miu/ml"]),
    alias(unit("[IU]/mL", ArbitraryConcentration, 1, 3), &["iu/ml"]),
    alias(unit("k[IU]/L", ArbitraryConcentration, 1, 3), &["kiu/l"]),
    // Fractions, base 1.
    unit("%", Fraction, 1, -2),
    unit("L/L", Fraction, 1, 0),
    unit("1", Fraction, 1, 0),
    // Pressure, base Pa.
    unit("kPa", Pressure, 1, 3),
    alias(unit("mm[Hg]", Pressure, 1_333_220, -4), &["mmhg"]),
    // Mass and amount (mean cell haemoglobin), base g and mol.
    unit("pg", Mass, 1, -12),
    unit("fmol", Amount, 1, -15),
    // Volume, base L.
    unit("fL", Volume, 1, -15),
    unit("um3", Volume, 1, -15),
    // Spellings only.
    alias(unit("{INR}", Other, 1, 0), &["inr"]),
    alias(unit("[pH]", Other, 1, 0), &["ph"]),
    alias(unit("s", Other, 1, 0), &["sec", "secs"]),
    alias(unit("mm/h", Other, 1, 0), &["mm/hr"]),
    alias(unit("mosm/kg", Other, 1, 0), &["mosmol/kg"]),
    alias(unit("/[HPF]", Other, 1, 0), &["/hpf"]),
    alias(unit("/[LPF]", Other, 1, 0), &["/lpf"]),
];

/// Whether a spelling means different units to different senders, so that only the same
/// spelling matches it: `G/L` (giga per litre to some haematology analyzers, gram per litre
/// in UCUM's case-insensitive form) and `IU/L` in any case (an enzyme unit on older chemistry
/// analyzers, a WHO International Unit on immunoassays).
fn ambiguous(unit: &str, key: &str) -> bool {
    key == "iu/l" || (key == "g/l" && unit.starts_with('G'))
}

fn unit_def(code: &str) -> Option<&'static UnitDef> {
    UNITS.iter().find(|u| u.code == code)
}

/// The lookup key of a spelling, written into `buf`: ASCII lower case, spaces dropped, µ
/// (U+00B5) and μ (U+03BC) as `u`, `^` as `*`, and the exponent forms `x10E9`, `10^9` and
/// `×10*9` as UCUM's `10*9`. `None` for other non-ASCII text or a spelling too long.
fn lookup_key<'b>(unit: &str, buf: &'b mut [u8; UNIT_LEN_MAX]) -> Option<&'b str> {
    let mut len = 0;
    for c in unit.chars() {
        let b = match c {
            c if c.is_whitespace() => continue,
            'µ' | 'μ' => b'u',
            '×' => b'x',
            '^' => b'*',
            c if c.is_ascii() => c.to_ascii_lowercase() as u8,
            _ => return None,
        };
        *buf.get_mut(len)? = b;
        len += 1;
    }
    let mut key = &mut buf[..len];
    if key.starts_with(b"x10") {
        key = &mut key[1..];
    }
    if key.starts_with(b"10e") {
        key[2] = b'*';
    }
    std::str::from_utf8(key).ok()
}

fn find(key: &str) -> Option<&'static UnitDef> {
    UNITS.iter().find(|u| u.code.eq_ignore_ascii_case(key) || u.aliases.contains(&key))
}

/// The size of one unit of `u` in moles (of `analyte`) per litre, or in moles for a mass.
fn amount(u: &UnitDef, analyte: &Analyte) -> Option<Ratio> {
    let scale = u.scale();
    let molar_mass = || analyte.molar_mass_g_per_mol();
    let charge = || analyte.charge.map(Decimal::from);
    match u.kind {
        SubstanceConcentration | Amount => Some(scale),
        MassConcentration | Mass => Some(Ratio { num: scale.num, den: scale.den * molar_mass()? }),
        EquivalentConcentration => Some(Ratio { num: scale.num, den: scale.den * charge()? }),
        _ => None,
    }
}

/// Kinds that an analyte relates: concentrations with concentrations, amounts with masses.
fn family(kind: Kind) -> Option<u8> {
    match kind {
        MassConcentration | SubstanceConcentration | EquivalentConcentration => Some(0),
        Mass | Amount => Some(1),
        _ => None,
    }
}

/// An exact fraction of decimals.
#[derive(Debug, Clone, Copy)]
struct Ratio {
    num: Decimal,
    den: Decimal,
}

impl Ratio {
    fn over(self, other: Ratio) -> Ratio {
        Ratio { num: self.num * other.den, den: self.den * other.num }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    /// `value` of `test` sent in `from`, converted to `to` with `decimals` places.
    fn check(test: &str, from: &str, to: &str, value: &str, decimals: u32, expected: &str) {
        let c = conversion(test, to, from)
            .unwrap_or_else(|| panic!("{test}: no conversion from {from} to {to}"));
        let v = ReportedValue::parse(value).unwrap();
        let converted = c.apply(&v, Some(decimals)).unwrap();
        assert_eq!(converted.text, expected, "{test} {value} {from} → {to}");
        assert_eq!(ReportedValue::parse(&converted.text).unwrap(), converted, "{test}");
    }

    fn none(test: &str, from: &str, to: &str) {
        assert_eq!(conversion(test, to, from), None, "{test} {from} → {to}");
    }

    #[test]
    fn analyzer_spellings_name_one_ucum_code() {
        for (sent, code) in [
            ("mg/dl", "mg/dL"),
            ("MG/DL", "mg/dL"),
            (" mg/dL ", "mg/dL"),
            ("mmol/l", "mmol/L"),
            ("umol/L", "umol/L"),
            ("µmol/l", "umol/L"),
            ("μmol/L", "umol/L"),
            ("g/dl", "g/dL"),
            ("g/l", "g/L"),
            ("10^9/L", "10*9/L"),
            ("10*9/L", "10*9/L"),
            ("x10E9/L", "10*9/L"),
            ("10E9/l", "10*9/L"),
            ("x10^3/uL", "10*3/uL"),
            ("K/uL", "10*3/uL"),
            ("10^12/L", "10*12/L"),
            ("M/uL", "10*6/uL"),
            ("%", "%"),
            ("mEq/L", "meq/L"),
            ("mIU/L", "m[IU]/L"),
            ("uIU/mL", "u[IU]/mL"),
            ("µIU/mL", "u[IU]/mL"),
            ("IU/mL", "[IU]/mL"),
            ("U/l", "U/L"),
            ("ukat/l", "ukat/L"),
            ("mmHg", "mm[Hg]"),
            ("mm Hg", "mm[Hg]"),
            ("kpa", "kPa"),
            ("fl", "fL"),
            ("mOsm/kg", "mosm/kg"),
            ("sec", "s"),
            ("mm/hr", "mm/h"),
            ("INR", "{INR}"),
            ("ug/mL FEU", "ug/mL{FEU}"),
            ("l/l", "L/L"),
            ("/hpf", "/[HPF]"),
        ] {
            assert_eq!(normalize(sent), code, "{sent:?}");
        }
    }

    #[test]
    fn unknown_and_ambiguous_spellings_compare_exactly_as_sent() {
        for sent in ["mmol/mol", "mg%", "Ery/uL", "G/L", "IU/L", "iu/l", "mg/dL DDU", "{copies}/mL"]
        {
            assert_eq!(normalize(sent), sent, "{sent:?}");
        }
        assert_eq!(normalize("  mg% "), "mg%");
        assert_eq!(normalize(""), "");
        assert!(same_unit("mg/dl", "mg/dL"));
        assert!(same_unit("µmol/l", "umol/L"));
        assert!(!same_unit("G/L", "g/L"), "giga or gram: never guessed");
        assert!(!same_unit("mg%", "mg/dL"));
        assert!(!same_unit(&"x".repeat(UNIT_LEN_MAX + 1), "x"));
    }

    #[test]
    fn no_two_units_share_a_spelling() {
        let mut keys: Vec<String> = Vec::new();
        for u in UNITS {
            let mut buf = [0u8; UNIT_LEN_MAX];
            let own = lookup_key(u.code, &mut buf).unwrap().to_owned();
            for key in std::iter::once(own.as_str()).chain(u.aliases.iter().copied()) {
                let mut buf = [0u8; UNIT_LEN_MAX];
                assert_eq!(lookup_key(key, &mut buf), Some(key), "alias {key:?} is a lookup key");
                assert!(!keys.iter().any(|k| k == key), "{key:?} names two units");
                keys.push(key.to_owned());
            }
            assert_eq!(normalize(u.code), u.code, "{} names itself", u.code);
        }
    }

    #[test]
    fn every_catalog_unit_is_written_as_its_ucum_code() {
        let catalog = Catalog::bundled();
        for t in catalog.tests() {
            assert_eq!(normalize(&t.unit), t.unit, "{}: {:?}", t.code, t.unit);
        }
    }

    #[test]
    fn every_analyte_is_a_numeric_catalog_test() {
        let catalog = Catalog::bundled();
        for a in ANALYTES {
            for code in a.codes {
                let t = catalog.test(code).unwrap_or_else(|| panic!("{code} is in the catalog"));
                assert_eq!(t.result_type, ResultType::Numeric, "{code}");
                assert!(
                    !convertible_units(code, &t.unit).is_empty(),
                    "{code} converts from something"
                );
            }
        }
    }

    #[test]
    fn si_results_convert_to_conventional_units_through_the_molar_mass() {
        check("GLU", "mmol/L", "mg/dL", "5.2", 0, "94");
        check("GLU", "mmol/L", "mg/dL", "2.0", 0, "36");
        check("CREAT", "umol/L", "mg/dL", "412", 2, "4.66");
        check("CREAT", "umol/L", "mg/dL", "88", 2, "1.00");
        check("BUN", "mmol/L", "mg/dL", "5.0", 0, "14");
        check("CA", "mmol/L", "mg/dL", "2.35", 1, "9.4");
        check("MG", "mmol/L", "mg/dL", "0.85", 1, "2.1");
        check("PHOS", "mmol/L", "mg/dL", "1.00", 1, "3.1");
        check("URIC", "umol/L", "mg/dL", "300", 1, "5.0");
        check("CHOL", "mmol/L", "mg/dL", "5.00", 0, "193");
        check("HDL", "mmol/L", "mg/dL", "1.30", 0, "50");
        check("TRIG", "mmol/L", "mg/dL", "1.70", 0, "151");
        check("TBIL", "umol/L", "mg/dL", "17.1", 1, "1.0");
        check("FE", "umol/L", "ug/dL", "20", 0, "112");
        check("NH3", "ug/dL", "umol/L", "50", 0, "29");
        check("LACT", "mg/dL", "mmol/L", "18", 1, "2.0");
        check("FT4", "pmol/L", "ng/dL", "15", 2, "1.17");
        check("B12", "pmol/L", "pg/mL", "300", 0, "407");
        check("FOL", "nmol/L", "ng/mL", "20", 1, "8.8");
        check("DIG", "nmol/L", "ng/mL", "1.3", 1, "1.0");
        check("APAP", "umol/L", "ug/mL", "1000", 0, "151");
        check("SAL", "mmol/L", "mg/dL", "2.2", 1, "30.4");
        check("VANC", "umol/L", "ug/mL", "10", 1, "14.5");
        check("HGB", "mmol/L", "g/dL", "8.6", 1, "13.9");
        check("MCH", "fmol", "pg", "1.86", 1, "30.0");
    }

    #[test]
    fn conventional_results_convert_to_si_and_back() {
        check("GLU", "mg/dL", "mmol/L", "94", 1, "5.2");
        check("CREAT", "mg/dL", "umol/L", "4.66", 0, "412");
        check("CA", "mg/dL", "mmol/L", "9.4", 2, "2.35");
        check("HGB", "g/dL", "mmol/L", "13.9", 1, "8.6");
        for (test, si, conventional) in [
            ("GLU", "mmol/L", "mg/dL"),
            ("CREAT", "umol/L", "mg/dL"),
            ("BUN", "mmol/L", "mg/dL"),
            ("TRIG", "mmol/L", "mg/dL"),
            ("HGB", "g/L", "g/dL"),
        ] {
            let there = conversion(test, conventional, si).unwrap();
            let back = conversion(test, si, conventional).unwrap();
            let x: Decimal = "7.25".parse().unwrap();
            let round_trip = back.convert(there.convert(x).unwrap()).unwrap();
            assert!((round_trip - x).abs() < Decimal::new(1, 20), "{test}: {round_trip}");
        }
    }

    #[test]
    fn units_of_one_kind_convert_by_their_definitions() {
        check("HGB", "g/L", "g/dL", "138", 1, "13.8");
        check("ALB", "g/L", "g/dL", "42", 1, "4.2");
        check("TP", "g/L", "g/dL", "70", 1, "7.0");
        check("CRP", "mg/dL", "mg/L", "1.2", 1, "12.0");
        check("WBC", "10*9/L", "10*3/uL", "6.21", 1, "6.2");
        check("PLT", "10^9/L", "10*3/uL", "212", 0, "212");
        check("RBC", "10*12/L", "10*6/uL", "4.53", 2, "4.53");
        check("ALT", "ukat/L", "U/L", "0.50", 0, "30");
        check("ALT", "U/L", "ukat/L", "30", 2, "0.50");
        check("PCO2A", "kPa", "mm[Hg]", "5.3", 0, "40");
        check("TSH", "uIU/mL", "m[IU]/L", "2.1", 2, "2.10");
        check("HCT", "L/L", "%", "0.405", 1, "40.5");
        check("TNIHS", "pg/mL", "ng/L", "14", 0, "14");
        check("DDIMER", "mg/L FEU", "ug/mL{FEU}", "0.5", 2, "0.50");
        check("FIB", "g/L", "mg/dL", "3.1", 0, "310");
        // Dimensional conversions need no analyte: any test may use them.
        assert!(conversion("NOSUCHTEST", "mg/dL", "g/L").is_some());
    }

    #[test]
    fn equivalents_convert_through_the_charge() {
        check("K", "meq/L", "mmol/L", "4.1", 1, "4.1");
        check("NA", "mEq/L", "mmol/L", "140", 0, "140");
        check("CA", "mEq/L", "mmol/L", "4.7", 2, "2.35");
        check("CA", "mEq/L", "mg/dL", "4.7", 1, "9.4");
        check("MG", "mEq/L", "mg/dL", "1.7", 1, "2.1");
    }

    #[test]
    fn what_cannot_be_related_is_not_converted() {
        none("GLU", "meq/L", "mg/dL");
        none("K", "mg/dL", "mmol/L");
        none("PHOS", "meq/L", "mg/dL");
        none("NOSUCHTEST", "mmol/L", "mg/dL");
        none("HBA1C", "mmol/mol", "%");
        none("DDIMER", "ug/mL", "ug/mL{FEU}");
        none("WBC", "G/L", "10*3/uL");
        none("ALT", "IU/L", "U/L");
        none("HGB", "pg", "g/dL");
        none("MCH", "g/dL", "pg");
        none("GLU", "mg/dL", "mg/dL");
        none("GLU", "mg/dl", "mg/dL");
    }

    #[test]
    fn a_censored_value_keeps_its_comparator() {
        check("GLU", "mmol/L", "mg/dL", "<0.5", 0, "<9");
        check("GLU", "mmol/L", "mg/dL", ">33.3", 0, ">600");
        check("CREAT", "umol/L", "mg/dL", "<= 10", 2, "<=0.11");
    }

    #[test]
    fn the_converted_value_is_rounded_once_half_away_from_zero() {
        // 125 g/L is exactly 12.5 g/dL: the midpoint rounds away from zero.
        check("HGB", "g/L", "g/dL", "125", 0, "13");
        check("HGB", "g/L", "g/dL", "-125", 0, "-13");
        check("HGB", "g/L", "g/dL", "-0.1", 0, "0");
        // 5.55 mmol/L is 99.98658 mg/dL: converted with the full factor, not 18.02 × 5.55.
        check("GLU", "mmol/L", "mg/dL", "5.55", 1, "100.0");
        check("CREAT", "umol/L", "mg/dL", "100", 4, "1.1312");
    }

    #[test]
    fn without_catalog_places_the_sent_significant_digits_are_kept() {
        let c = conversion("CREAT", "mg/dL", "umol/L").unwrap();
        let v = c.apply(&ReportedValue::parse("412").unwrap(), None).unwrap();
        assert_eq!(v.text, "4.66");
    }

    #[test]
    fn text_is_not_converted() {
        let c = conversion("GLU", "mg/dL", "mmol/L").unwrap();
        let v = ReportedValue::parse("hemolyzed").unwrap();
        assert_eq!(c.apply(&v, Some(0)), Some(v));
    }

    #[test]
    fn a_number_too_large_to_convert_is_not_converted() {
        let c = conversion("GLU", "mg/dL", "mmol/L").unwrap();
        let huge = ReportedValue::parse("79228162514264337593543950335").unwrap();
        assert_eq!(c.apply(&huge, Some(0)), None);
    }

    #[test]
    fn a_conversion_shows_its_factor_and_the_molar_mass_it_comes_from() {
        let glucose = conversion("GLU", "mg/dL", "mmol/l").unwrap();
        assert_eq!(glucose.factor(), Some("18.0156".parse().unwrap()));
        assert_eq!(glucose.molar_mass_g_per_mol(), Some("180.156".parse().unwrap()));
        assert_eq!(
            glucose.describe(),
            "mmol/L → mg/dL × 18.016 (glucose, C6H12O6, 180.156 g/mol; IUPAC 2021 standard atomic weights; PubChem CID 5793)"
        );
        let creatinine = conversion("CREAT", "mg/dL", "µmol/L").unwrap();
        assert!(
            creatinine.describe().starts_with("umol/L → mg/dL × 0.011312 (÷ 88.402) (creatinine"),
            "{}",
            creatinine.describe()
        );
        let calcium = conversion("CA", "mmol/L", "mEq/L").unwrap();
        assert_eq!(calcium.describe(), "meq/L → mmol/L × 0.5 (÷ 2) (calcium, Ca2+, charge 2)");
        assert_eq!(calcium.molar_mass_g_per_mol(), None);
        let haemoglobin = conversion("HGB", "g/dL", "g/L").unwrap();
        assert_eq!(
            haemoglobin.describe(),
            "g/L → g/dL × 0.1 (÷ 10) (UCUM definitions of both units)"
        );
        assert_eq!(haemoglobin.analyte, None);
    }

    #[test]
    fn the_units_a_test_converts_from_are_the_plausible_ones() {
        let glucose = convertible_units("GLU", "mg/dL");
        for u in ["g/L", "g/dL", "mg/L", "mmol/L", "umol/L"] {
            assert!(glucose.contains(&u), "{u} in {glucose:?}");
        }
        for u in ["pg/mL", "nmol/L", "mg/dL", "meq/L", "10*9/L"] {
            assert!(!glucose.contains(&u), "{u} not in {glucose:?}");
        }
        assert_eq!(convertible_units("K", "mmol/L"), ["mol/L", "umol/L", "meq/L"]);
        assert!(convertible_units("HBA1C", "%").iter().all(|u| ["L/L", "1"].contains(u)));
    }

    #[test]
    fn a_mapping_in_another_unit_is_converted_only_for_numeric_tests() {
        let catalog = Catalog::bundled();
        let glu = catalog.test("GLU").unwrap();
        assert_eq!(mapping(glu, ""), Mapping::Same);
        assert_eq!(mapping(glu, "mg/dl"), Mapping::Same);
        assert!(matches!(mapping(glu, "mmol/L"), Mapping::Convert(c) if c.from == "mmol/L"));
        assert_eq!(mapping(glu, "mEq/L"), Mapping::Unconvertible);
        let dipstick = catalog.test("UGLU").unwrap();
        assert_eq!(mapping(dipstick, "g/L"), Mapping::Unconvertible);
        assert_eq!(mapping(dipstick, "mg/dL"), Mapping::Same);
    }
}
