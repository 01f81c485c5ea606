#!/usr/bin/env bash
# Writes the benchmark's test content into the folder given as $1:
#   form.html  about 50 KB: a long checkout/registration form with 150+ fields
#              (passwords, card number, CVC, IBAN, e-mail, selects, textareas)
#              between paragraphs of text, with a literal <head>;
#   style.css  about 20 KB of plain CSS rules (the static asset).
# Deterministic: the same bytes on every run, so runs compare.
set -euo pipefail

out=${1:?usage: gen-content.sh DIR}
mkdir -p "$out"

lorem='Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur.'

{
	printf '<!DOCTYPE html>\n<html lang="en">\n<head>\n'
	printf '<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n'
	printf '<title>Loupe benchmark: long checkout form</title>\n'
	printf '<link rel="stylesheet" href="/style.css">\n</head>\n<body>\n'
	printf '<header class="site-header"><nav><a href="/">Home</a> <a href="/shop">Shop</a> <a href="/account">Account</a> <a href="/help">Help</a></nav></header>\n'
	printf '<main>\n<h1>Checkout and account details</h1>\n<p>%s</p>\n' "$lorem"
	printf '<form id="checkout" method="post" action="/checkout" autocomplete="on">\n'
	for s in $(seq 1 16); do
		printf '<fieldset class="section-%d">\n<legend>Section %d of 16</legend>\n' "$s" "$s"
		printf '<p class="help">%s</p>\n' "$lorem"
		for f in $(seq 1 9); do
			n=$(((s - 1) * 9 + f))
			case $((n % 9)) in
			0) printf '<label for="f%d">Full name %d</label>\n<input id="f%d" name="name_%d" type="text" autocomplete="name" placeholder="Ada Lovelace" value="">\n' "$n" "$n" "$n" "$n" ;;
			1) printf '<label for="f%d">E-mail %d</label>\n<input id="f%d" name="email_%d" type="email" autocomplete="email" placeholder="ada@example.com">\n' "$n" "$n" "$n" "$n" ;;
			2) printf '<label for="f%d">Password %d</label>\n<input id="f%d" name="password_%d" type="password" autocomplete="new-password" minlength="12">\n' "$n" "$n" "$n" "$n" ;;
			3) printf '<label for="f%d">Card number %d</label>\n<input id="f%d" name="card_number_%d" type="text" inputmode="numeric" autocomplete="cc-number" placeholder="4242 4242 4242 4242">\n' "$n" "$n" "$n" "$n" ;;
			4) printf '<label for="f%d">CVC %d</label>\n<input id="f%d" name="cvc_%d" type="text" inputmode="numeric" autocomplete="cc-csc" maxlength="4">\n' "$n" "$n" "$n" "$n" ;;
			5) printf '<label for="f%d">IBAN %d</label>\n<input id="f%d" name="iban_%d" type="text" placeholder="DE89 3704 0044 0532 0130 00">\n' "$n" "$n" "$n" "$n" ;;
			6) printf '<label for="f%d">Country %d</label>\n<select id="f%d" name="country_%d"><option value="de">Germany</option><option value="fr">France</option><option value="gb">United Kingdom</option><option value="us" selected>United States</option></select>\n' "$n" "$n" "$n" "$n" ;;
			7) printf '<label for="f%d">Phone %d</label>\n<input id="f%d" name="tel_%d" type="tel" autocomplete="tel" placeholder="+1 555 0100">\n' "$n" "$n" "$n" "$n" ;;
			8) printf '<label for="f%d">Notes %d</label>\n<textarea id="f%d" name="notes_%d" rows="3" cols="40">Leave at the door, please.</textarea>\n' "$n" "$n" "$n" "$n" ;;
			esac
		done
		printf '<label><input type="checkbox" name="agree_%d" value="yes"> I agree to the terms of section %d</label>\n' "$s" "$s"
		printf '</fieldset>\n'
	done
	printf '<button type="submit">Place order</button>\n</form>\n'
	for i in $(seq 1 26); do
		printf '<section class="faq"><h2>Question %d</h2><p>%s</p><p>%s</p></section>\n' "$i" "$lorem" "$lorem"
	done
	printf '</main>\n<footer><p>&copy; Loupe benchmark page. %s</p></footer>\n</body>\n</html>\n' "$lorem"
} >"$out/form.html"

{
	printf '/* Loupe benchmark stylesheet: plain rules, about 20 KB. */\n'
	for i in $(seq 1 102); do
		printf '.component-%d { display: block; margin: %dpx auto; padding: %dpx %dpx; color: #%06x; background: #%06x; }\n' \
			"$i" $((i % 17)) $((i % 11)) $((i % 13)) $((i * 7919 % 16777216)) $((16777215 - i * 104729 % 16777216))
		printf '.component-%d:hover, .component-%d:focus-within { border: 1px solid rgba(0, 0, 0, 0.%d); }\n' "$i" "$i" $((i % 9 + 1))
	done
} >"$out/style.css"
