//! Delta checks: is this result plausible next to the patient's previous one?
