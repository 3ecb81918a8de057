//! Code 128 barcodes as SVG.
