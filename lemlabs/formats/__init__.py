"""Readers and writers at the edge: lab files (CSV, Parquet, SAS transport), SDTM in and ADLB out,
FHIR, findings as CSV/JSON/Parquet, Excel, the HTML report and its plots."""
