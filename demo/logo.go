package demo

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
)

// logoSize is the logo's width and height in pixels; the header shows it at
// 40 CSS pixels, so this is sharp on 2× screens.
const logoSize = 96

// drawLogo draws the shop's logo, a cream magnifying glass over a coffee
// bean on an espresso-brown rounded square, and returns it PNG-encoded.
// It is drawn in code rather than shipped as a file so that the demo serves
// at least one raster image whose bytes are not in the repository.
func drawLogo() []byte {
	var (
		brown = color.NRGBA{0x4a, 0x2c, 0x1d, 0xff}
		cream = color.NRGBA{0xf6, 0xe7, 0xcf, 0xff}
		bean  = color.NRGBA{0xc8, 0x7f, 0x3a, 0xff}
	)
	const n = logoSize
	img := image.NewNRGBA(image.Rect(0, 0, n, n))

	// shape returns the colour at a point, or ok=false outside the logo.
	// Later shapes paint over earlier ones.
	shape := func(x, y float64) (c color.NRGBA, ok bool) {
		if !inRoundedSquare(x, y, n, 20) {
			return c, false
		}
		c = brown
		lx, ly, lr := 40.0, 40.0, 24.0 // lens centre and radius
		d := math.Hypot(x-lx, y-ly)
		// Coffee bean inside the lens: an ellipse tilted 45° with a
		// curved crease down the middle.
		u := ((x - lx) + (y - ly)) / math.Sqrt2
		v := ((x - lx) - (y - ly)) / math.Sqrt2
		if (u*u)/(15*15)+(v*v)/(10*10) <= 1 {
			c = bean
			if math.Abs(v-3*math.Sin(u/5)) < 1.6 {
				c = brown
			}
		}
		// Lens rim.
		if d >= lr-3.5 && d <= lr+3.5 {
			c = cream
		}
		// Handle, from the rim towards the bottom-right corner.
		hx, hy := x-lx, y-ly
		along := (hx + hy) / math.Sqrt2
		across := math.Abs(hx-hy) / math.Sqrt2
		if along >= lr+2 && along <= lr+32 && across <= 6 {
			c = cream
		}
		return c, true
	}

	// 4×4 supersampling keeps the edges smooth.
	const ss = 4
	for py := 0; py < n; py++ {
		for px := 0; px < n; px++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					c, ok := shape(float64(px)+(float64(sx)+0.5)/ss, float64(py)+(float64(sy)+0.5)/ss)
					if !ok {
						continue
					}
					r += float64(c.R)
					g += float64(c.G)
					b += float64(c.B)
					a++
				}
			}
			if a == 0 {
				continue
			}
			img.SetNRGBA(px, py, color.NRGBA{
				R: uint8(r / a), G: uint8(g / a), B: uint8(b / a),
				A: uint8(a * 255 / (ss * ss)),
			})
		}
	}

	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		// Encoding an in-memory image to a buffer cannot fail.
		panic(err)
	}
	return buf.Bytes()
}

// inRoundedSquare reports whether (x, y) lies inside a size×size square at
// the origin whose corners are rounded with radius r.
func inRoundedSquare(x, y, size, r float64) bool {
	if x < 0 || y < 0 || x > size || y > size {
		return false
	}
	cx := math.Min(math.Max(x, r), size-r)
	cy := math.Min(math.Max(y, r), size-r)
	return math.Hypot(x-cx, y-cy) <= r
}
