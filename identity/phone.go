package identity

import "strings"

// callingCodes maps ISO regions to their country calling codes, for reading
// national numbers. It covers the markets Custody's brands sell to; a number
// written with a leading + or 00 never needs it.
var callingCodes = map[string]string{
	"US": "1", "CA": "1", "GB": "44", "UK": "44", "IE": "353", "DE": "49", "FR": "33", "NL": "31",
	"BE": "32", "LU": "352", "ES": "34", "PT": "351", "IT": "39", "AT": "43", "CH": "41", "SE": "46",
	"NO": "47", "DK": "45", "FI": "358", "PL": "48", "CZ": "420", "SK": "421", "HU": "36", "RO": "40",
	"BG": "359", "GR": "30", "HR": "385", "SI": "386", "EE": "372", "LV": "371", "LT": "370",
	"MT": "356", "CY": "357", "IS": "354", "AU": "61", "NZ": "64", "JP": "81", "KR": "82", "SG": "65",
	"IN": "91", "BR": "55", "MX": "52", "ZA": "27", "AE": "971", "IL": "972", "HK": "852", "CN": "86",
}

func callingCode(region string) string { return callingCodes[strings.ToUpper(region)] }

// NormalizePhone returns the E.164 form of a phone number: "+" and digits.
// Numbers with a leading + or 00 keep their country code; national numbers
// take region's calling code, dropping one trunk prefix 0 (and the NANP 1).
// It returns "" when there are too few or too many digits to be a phone.
func NormalizePhone(s, region string) string {
	s = strings.TrimSpace(s)
	var digits strings.Builder
	plus := false
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits.WriteRune(r)
		case r == '+' && digits.Len() == 0 && i == strings.IndexRune(s, '+'):
			plus = true
		}
	}
	d := digits.String()
	switch {
	case plus:
	case strings.HasPrefix(d, "00"):
		d = d[2:]
	default:
		cc := callingCode(region)
		if cc == "" {
			return ""
		}
		if cc == "1" && len(d) == 11 && d[0] == '1' {
			d = d[1:]
		}
		d = cc + strings.TrimPrefix(d, "0")
	}
	if len(d) < 8 || len(d) > 15 {
		return ""
	}
	return "+" + d
}
