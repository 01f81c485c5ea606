package proxy

import (
	"net/http"
	"slices"
	"testing"
)

func TestStripCookies(t *testing.T) {
	names := [3]string{"sid", "", "login"}
	for _, tt := range []struct {
		in     []string
		want   []string // Cookie lines after
		values [3]string
	}{
		{nil, nil, [3]string{}},
		{[]string{"a=1;b=2"}, []string{"a=1;b=2"}, [3]string{}}, // untouched, spacing and all
		{[]string{"a=1; sid=S; b=2"}, []string{"a=1; b=2"}, [3]string{"S", "", ""}},
		{[]string{"sid=S", "login=L; c=3"}, []string{"c=3"}, [3]string{"S", "", "L"}},
		{[]string{"login=L;sid=S"}, nil, [3]string{"S", "", "L"}},
		{[]string{"=x; sid=S"}, []string{"=x"}, [3]string{"S", "", ""}}, // an empty name is no name of names
		{[]string{"sidx=1; xsid=2; sid=S"}, []string{"sidx=1; xsid=2"}, [3]string{"S", "", ""}},
	} {
		h := http.Header{}
		for _, l := range tt.in {
			h.Add("Cookie", l)
		}
		values := stripCookies(h, names)
		if got := h.Values("Cookie"); !slices.Equal(got, tt.want) || values != tt.values {
			t.Errorf("%q: Cookie %q, values %q; want %q, %q", tt.in, got, values, tt.want, tt.values)
		}
	}
}
