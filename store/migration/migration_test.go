package migration

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		files   []string
		want    []int
		wantErr string
	}{
		{name: "ordered by number", files: []string{"0010_c.sql", "0002_b.sql", "0001_a.sql"}, want: []int{1, 2, 10}},
		{name: "empty", want: nil},
		{name: "no number", files: []string{"init.sql"}, wantErr: "positive number"},
		{name: "zero", files: []string{"0000_x.sql"}, wantErr: "positive number"},
		{name: "same number", files: []string{"0001_a.sql", "0001_b.sql"}, wantErr: "share a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{"m/readme.txt": {Data: []byte("not a migration")}}
			for _, f := range tt.files {
				fsys["m/"+f] = &fstest.MapFile{Data: []byte("-- " + f)}
			}
			ms, err := Load(fsys, "m")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, m := range ms {
				got = append(got, m.Version)
				if m.SQL != "-- "+m.Name {
					t.Errorf("%s: got SQL %q", m.Name, m.SQL)
				}
			}
			if len(got) != len(tt.want) || (len(got) > 0 && !equal(got, tt.want)) {
				t.Errorf("got versions %v, want %v", got, tt.want)
			}
		})
	}
}

func equal(a, b []int) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
