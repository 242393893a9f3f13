"""ICAO Doc 9303 issuing-state codes and sltd's document type and status codes.

Country codes are the ICAO 9303 three-letter codes: ISO 3166-1 alpha-3 (frozen here from
the ISO list so that validation never changes under a dependency upgrade) plus the ICAO
specials for organisations, stateless persons and refugees, and the one-letter ``D`` that
German documents carry in their MRZ, which maps to ``DEU``.

Example:
    >>> country_code(" d ")
    'DEU'
    >>> doc_type_code("Identity card")
    'I'
"""

from __future__ import annotations

import re

from sltd.errors import UnknownCountry, UnknownDocType, UnknownStatus

#: ISO 3166-1 alpha-3, as issued by ISO (generated from the ISO list, not typed by hand).
ISO_COUNTRIES: dict[str, str] = {
    "ABW": "Aruba",
    "AFG": "Afghanistan",
    "AGO": "Angola",
    "AIA": "Anguilla",
    "ALA": "Åland Islands",
    "ALB": "Albania",
    "AND": "Andorra",
    "ARE": "United Arab Emirates",
    "ARG": "Argentina",
    "ARM": "Armenia",
    "ASM": "American Samoa",
    "ATA": "Antarctica",
    "ATF": "French Southern Territories",
    "ATG": "Antigua and Barbuda",
    "AUS": "Australia",
    "AUT": "Austria",
    "AZE": "Azerbaijan",
    "BDI": "Burundi",
    "BEL": "Belgium",
    "BEN": "Benin",
    "BES": "Bonaire, Sint Eustatius and Saba",
    "BFA": "Burkina Faso",
    "BGD": "Bangladesh",
    "BGR": "Bulgaria",
    "BHR": "Bahrain",
    "BHS": "Bahamas",
    "BIH": "Bosnia and Herzegovina",
    "BLM": "Saint Barthélemy",
    "BLR": "Belarus",
    "BLZ": "Belize",
    "BMU": "Bermuda",
    "BOL": "Bolivia",
    "BRA": "Brazil",
    "BRB": "Barbados",
    "BRN": "Brunei Darussalam",
    "BTN": "Bhutan",
    "BVT": "Bouvet Island",
    "BWA": "Botswana",
    "CAF": "Central African Republic",
    "CAN": "Canada",
    "CCK": "Cocos (Keeling) Islands",
    "CHE": "Switzerland",
    "CHL": "Chile",
    "CHN": "China",
    "CIV": "Côte d'Ivoire",
    "CMR": "Cameroon",
    "COD": "Congo, The Democratic Republic of the",
    "COG": "Congo",
    "COK": "Cook Islands",
    "COL": "Colombia",
    "COM": "Comoros",
    "CPV": "Cabo Verde",
    "CRI": "Costa Rica",
    "CUB": "Cuba",
    "CUW": "Curaçao",
    "CXR": "Christmas Island",
    "CYM": "Cayman Islands",
    "CYP": "Cyprus",
    "CZE": "Czechia",
    "DEU": "Germany",
    "DJI": "Djibouti",
    "DMA": "Dominica",
    "DNK": "Denmark",
    "DOM": "Dominican Republic",
    "DZA": "Algeria",
    "ECU": "Ecuador",
    "EGY": "Egypt",
    "ERI": "Eritrea",
    "ESH": "Western Sahara",
    "ESP": "Spain",
    "EST": "Estonia",
    "ETH": "Ethiopia",
    "FIN": "Finland",
    "FJI": "Fiji",
    "FLK": "Falkland Islands (Malvinas)",
    "FRA": "France",
    "FRO": "Faroe Islands",
    "FSM": "Micronesia, Federated States of",
    "GAB": "Gabon",
    "GBR": "United Kingdom",
    "GEO": "Georgia",
    "GGY": "Guernsey",
    "GHA": "Ghana",
    "GIB": "Gibraltar",
    "GIN": "Guinea",
    "GLP": "Guadeloupe",
    "GMB": "Gambia",
    "GNB": "Guinea-Bissau",
    "GNQ": "Equatorial Guinea",
    "GRC": "Greece",
    "GRD": "Grenada",
    "GRL": "Greenland",
    "GTM": "Guatemala",
    "GUF": "French Guiana",
    "GUM": "Guam",
    "GUY": "Guyana",
    "HKG": "Hong Kong",
    "HMD": "Heard Island and McDonald Islands",
    "HND": "Honduras",
    "HRV": "Croatia",
    "HTI": "Haiti",
    "HUN": "Hungary",
    "IDN": "Indonesia",
    "IMN": "Isle of Man",
    "IND": "India",
    "IOT": "British Indian Ocean Territory",
    "IRL": "Ireland",
    "IRN": "Iran",
    "IRQ": "Iraq",
    "ISL": "Iceland",
    "ISR": "Israel",
    "ITA": "Italy",
    "JAM": "Jamaica",
    "JEY": "Jersey",
    "JOR": "Jordan",
    "JPN": "Japan",
    "KAZ": "Kazakhstan",
    "KEN": "Kenya",
    "KGZ": "Kyrgyzstan",
    "KHM": "Cambodia",
    "KIR": "Kiribati",
    "KNA": "Saint Kitts and Nevis",
    "KOR": "South Korea",
    "KWT": "Kuwait",
    "LAO": "Laos",
    "LBN": "Lebanon",
    "LBR": "Liberia",
    "LBY": "Libya",
    "LCA": "Saint Lucia",
    "LIE": "Liechtenstein",
    "LKA": "Sri Lanka",
    "LSO": "Lesotho",
    "LTU": "Lithuania",
    "LUX": "Luxembourg",
    "LVA": "Latvia",
    "MAC": "Macao",
    "MAF": "Saint Martin (French part)",
    "MAR": "Morocco",
    "MCO": "Monaco",
    "MDA": "Moldova",
    "MDG": "Madagascar",
    "MDV": "Maldives",
    "MEX": "Mexico",
    "MHL": "Marshall Islands",
    "MKD": "North Macedonia",
    "MLI": "Mali",
    "MLT": "Malta",
    "MMR": "Myanmar",
    "MNE": "Montenegro",
    "MNG": "Mongolia",
    "MNP": "Northern Mariana Islands",
    "MOZ": "Mozambique",
    "MRT": "Mauritania",
    "MSR": "Montserrat",
    "MTQ": "Martinique",
    "MUS": "Mauritius",
    "MWI": "Malawi",
    "MYS": "Malaysia",
    "MYT": "Mayotte",
    "NAM": "Namibia",
    "NCL": "New Caledonia",
    "NER": "Niger",
    "NFK": "Norfolk Island",
    "NGA": "Nigeria",
    "NIC": "Nicaragua",
    "NIU": "Niue",
    "NLD": "Netherlands",
    "NOR": "Norway",
    "NPL": "Nepal",
    "NRU": "Nauru",
    "NZL": "New Zealand",
    "OMN": "Oman",
    "PAK": "Pakistan",
    "PAN": "Panama",
    "PCN": "Pitcairn",
    "PER": "Peru",
    "PHL": "Philippines",
    "PLW": "Palau",
    "PNG": "Papua New Guinea",
    "POL": "Poland",
    "PRI": "Puerto Rico",
    "PRK": "North Korea",
    "PRT": "Portugal",
    "PRY": "Paraguay",
    "PSE": "Palestine, State of",
    "PYF": "French Polynesia",
    "QAT": "Qatar",
    "REU": "Réunion",
    "ROU": "Romania",
    "RUS": "Russian Federation",
    "RWA": "Rwanda",
    "SAU": "Saudi Arabia",
    "SDN": "Sudan",
    "SEN": "Senegal",
    "SGP": "Singapore",
    "SGS": "South Georgia and the South Sandwich Islands",
    "SHN": "Saint Helena, Ascension and Tristan da Cunha",
    "SJM": "Svalbard and Jan Mayen",
    "SLB": "Solomon Islands",
    "SLE": "Sierra Leone",
    "SLV": "El Salvador",
    "SMR": "San Marino",
    "SOM": "Somalia",
    "SPM": "Saint Pierre and Miquelon",
    "SRB": "Serbia",
    "SSD": "South Sudan",
    "STP": "Sao Tome and Principe",
    "SUR": "Suriname",
    "SVK": "Slovakia",
    "SVN": "Slovenia",
    "SWE": "Sweden",
    "SWZ": "Eswatini",
    "SXM": "Sint Maarten (Dutch part)",
    "SYC": "Seychelles",
    "SYR": "Syria",
    "TCA": "Turks and Caicos Islands",
    "TCD": "Chad",
    "TGO": "Togo",
    "THA": "Thailand",
    "TJK": "Tajikistan",
    "TKL": "Tokelau",
    "TKM": "Turkmenistan",
    "TLS": "Timor-Leste",
    "TON": "Tonga",
    "TTO": "Trinidad and Tobago",
    "TUN": "Tunisia",
    "TUR": "Türkiye",
    "TUV": "Tuvalu",
    "TWN": "Taiwan",
    "TZA": "Tanzania",
    "UGA": "Uganda",
    "UKR": "Ukraine",
    "UMI": "United States Minor Outlying Islands",
    "URY": "Uruguay",
    "USA": "United States",
    "UZB": "Uzbekistan",
    "VAT": "Holy See (Vatican City State)",
    "VCT": "Saint Vincent and the Grenadines",
    "VEN": "Venezuela",
    "VGB": "Virgin Islands, British",
    "VIR": "Virgin Islands, U.S.",
    "VNM": "Vietnam",
    "VUT": "Vanuatu",
    "WLF": "Wallis and Futuna",
    "WSM": "Samoa",
    "YEM": "Yemen",
    "ZAF": "South Africa",
    "ZMB": "Zambia",
    "ZWE": "Zimbabwe",
}

#: ICAO 9303 Part 3 codes that are not ISO 3166 countries, and which of them are
#: international organisations (their hit alerts go to the General Secretariat).
ICAO_ORGANISATIONS: dict[str, str] = {
    "EUE": "European Union",
    "UNO": "United Nations Organization",
    "UNA": "Specialized agency of the United Nations",
    "UNK": "UN Interim Administration Mission in Kosovo",
    "XBA": "African Development Bank",
    "XIM": "African Export-Import Bank",
    "XCC": "Caribbean Community",
    "XCE": "Council of Europe",
    "XCO": "Common Market for Eastern and Southern Africa",
    "XEC": "Economic Community of West African States",
    "XPO": "International Criminal Police Organization (INTERPOL)",
    "XES": "Organisation of Eastern Caribbean States",
    "XMP": "Parliamentary Assembly of the Mediterranean",
    "XOM": "Sovereign Military Order of Malta",
    "XDC": "Southern African Development Community",
}

ICAO_OTHER: dict[str, str] = {
    "GBD": "British Overseas Territories Citizen",
    "GBN": "British National (Overseas)",
    "GBO": "British Overseas Citizen",
    "GBP": "British Protected Person",
    "GBS": "British Subject",
    "RKS": "Kosovo",
    "XXA": "Stateless person",
    "XXB": "Refugee (1951 Convention)",
    "XXC": "Refugee (other)",
    "XXX": "Unspecified nationality",
}

#: ICAO's fictional specimen state, used on every specimen document in Doc 9303. Accepted
#: so that the specimens can be checked end to end; no real document carries it.
ICAO_SPECIMEN: dict[str, str] = {"UTO": "Utopia (ICAO specimen state)"}

#: Codes that ICAO writes differently from ISO; the value is the canonical sltd code.
COUNTRY_ALIASES: dict[str, str] = {"D": "DEU"}

COUNTRIES: dict[str, str] = {**ISO_COUNTRIES, **ICAO_ORGANISATIONS, **ICAO_OTHER,
                              **ICAO_SPECIMEN}


def country_code(value: str) -> str:
    """Return the canonical three-letter code of an issuing country.

    Accepts any case and surrounding spaces or MRZ fillers (``"D<<"`` is Germany).

    Args:
        value: an ICAO 9303 code as typed or read from an MRZ.

    Returns:
        The canonical code, e.g. ``"DEU"``.

    Raises:
        UnknownCountry: the code is not an ICAO 9303 code.

    Example:
        >>> country_code("fra")
        'FRA'
    """
    code = str(value).strip(_COUNTRY_STRIP).upper() if value is not None else ""
    code = COUNTRY_ALIASES.get(code, code)
    if code not in COUNTRIES:
        raise UnknownCountry(
            "not an ICAO 9303 issuing-state code (use ISO 3166-1 alpha-3, e.g. FRA, or an "
            "ICAO code such as D, UNO, XXA)",
            field="issuing_country",
            value=value,
        )
    return code


def is_international_organisation(code: str) -> bool:
    """Whether a record of this issuing code belongs to an international organisation.

    Example:
        >>> is_international_organisation("UNO")
        True
    """
    return code in ICAO_ORGANISATIONS


#: sltd document type codes and their names. Codes follow the ICAO 9303 document code
#: where one exists (P, PD, PS, I, V); R and T and O are sltd's own.
DOC_TYPES: dict[str, str] = {
    "P": "passport",
    "PD": "diplomatic passport",
    "PS": "service passport",
    "I": "identity card",
    "V": "visa",
    "R": "residence permit",
    "T": "refugee or stateless travel document",
    "O": "other travel document",
}

_DOC_TYPE_ALIASES: dict[str, str] = {
    **{code.lower(): code for code in DOC_TYPES},
    **{name: code for code, name in DOC_TYPES.items()},
    "pp": "P",
    "ordinary passport": "P",
    "official passport": "PS",
    "po": "PS",
    "id": "I",
    "id card": "I",
    "national identity card": "I",
    "identity document": "I",
    "rp": "R",
    "residence card": "R",
    "refugee travel document": "T",
    "stateless travel document": "T",
    "travel document": "T",
    "other": "O",
}


_ALIAS_SEPARATORS = re.compile(r"[\t\n\f\r _-]+")

#: DuckDB SQL twin of :func:`_alias_key` (``{col}`` is the column).
SQL_ALIAS_KEY = r"lower(trim(regexp_replace({col}, '[\t\n\f\r _-]+', ' ', 'g')))"

#: Characters stripped around a country code (white space and MRZ filler), and the SQL twin.
_COUNTRY_STRIP = " \t\n\f\r<"
SQL_COUNTRY_KEY = "lower(trim({col}, ' ' || chr(9) || chr(10) || chr(12) || chr(13) || '<'))"


def _alias_key(value: str) -> str:
    return _ALIAS_SEPARATORS.sub(" ", str(value)).strip(" ").lower()


def doc_type_code(value: str) -> str:
    """Return sltd's code for a document type given as a code or a name, in any case.

    Args:
        value: e.g. ``"P"``, ``"passport"``, ``"Identity card"``, ``"DIPLOMATIC_PASSPORT"``.

    Returns:
        One of the keys of :data:`DOC_TYPES`.

    Raises:
        UnknownDocType: the value names no known type.

    Example:
        >>> doc_type_code("diplomatic_passport")
        'PD'
    """
    code = _DOC_TYPE_ALIASES.get(_alias_key(value)) if value is not None else None
    if code is None:
        known = ", ".join(f"{c} ({n})" for c, n in DOC_TYPES.items())
        raise UnknownDocType(f"unknown document type; use one of {known}",
                             field="document_type", value=value)
    return code


#: Record statuses, by canonical name.
STATUSES: tuple[str, ...] = ("lost", "stolen", "stolen_blank", "revoked")

_STATUS_ALIASES: dict[str, str] = {
    **{s.replace("_", " "): s for s in STATUSES},
    "blank": "stolen_blank",
    "stolen blank booklet": "stolen_blank",
    "invalid": "revoked",
    "invalidated": "revoked",
    "cancelled": "revoked",
}


def status_code(value: str) -> str:
    """Return the canonical status name.

    Accepts any case, spaces, hyphens or underscores (``"stolen blank"``, ``"STOLEN_BLANK"``);
    INTERPOL's ``"invalid"`` is taken as ``revoked``.

    Raises:
        UnknownStatus: not one of lost, stolen, stolen blank, revoked.

    Example:
        >>> status_code("Stolen Blank")
        'stolen_blank'
    """
    code = _STATUS_ALIASES.get(_alias_key(value)) if value is not None else None
    if code is None:
        raise UnknownStatus("unknown status; use lost, stolen, stolen blank or revoked",
                            field="status", value=value)
    return code


def alias_rows() -> dict[str, list[tuple[str, str]]]:
    """Alias tables for the bulk loader (lower-case alias -> code), one per field.

    The loader joins against these in DuckDB so that bulk validation accepts exactly what
    the single-value functions above accept.
    """
    countries = [(c.lower(), c) for c in COUNTRIES] + [
        (a.lower(), c) for a, c in COUNTRY_ALIASES.items()
    ]
    return {
        "issuing_country": countries,
        "document_type": sorted(_DOC_TYPE_ALIASES.items()),
        "status": sorted(_STATUS_ALIASES.items()),
    }
