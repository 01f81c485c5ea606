// Loupe Coffee Supply — the demo shop's script. Plain JavaScript, no
// dependencies. It keeps the cart and the "recently viewed" list in
// localStorage and changes the DOM after load on purpose: those changes are
// what a session recording has to capture.
(function () {
  "use strict";

  var CART_KEY = "loupe-demo-cart";     // [{id, name, price (cents), image, qty}]
  var RECENT_KEY = "loupe-demo-recent"; // [{id, name, image}], newest first
  var PROMO_MS = 2000;
  var PROMOS = [
    "Free shipping on orders over $40",
    "New: Ethiopia Guji, a light roast with bergamot and peach",
    "Roasted Monday and Thursday, shipped the same day",
    "Grinder + beans bundle: 10% off at checkout",
  ];

  function load(key) {
    try {
      var v = JSON.parse(localStorage.getItem(key) || "[]");
      return Array.isArray(v) ? v : [];
    } catch (e) {
      return [];
    }
  }

  function save(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch (e) {
      // Storage may be disabled (private mode, quotas); the page still works.
    }
  }

  function money(cents) {
    return "$" + (cents / 100).toFixed(2);
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function cartCount(cart) {
    return cart.reduce(function (n, item) { return n + item.qty; }, 0);
  }

  function cartTotal(cart) {
    return cart.reduce(function (n, item) { return n + item.qty * item.price; }, 0);
  }

  function updateCounter(bump) {
    var counter = document.getElementById("cart-count");
    if (!counter) return;
    counter.textContent = String(cartCount(load(CART_KEY)));
    if (bump) {
      counter.classList.add("bump");
      setTimeout(function () { counter.classList.remove("bump"); }, 250);
    }
  }

  // Home: rotate the promo banner and list recently viewed products.
  function initHome() {
    var promo = document.getElementById("promo");
    if (promo) {
      var i = 0;
      setInterval(function () {
        i = (i + 1) % PROMOS.length;
        promo.classList.add("fading");
        setTimeout(function () {
          promo.textContent = PROMOS[i];
          promo.classList.remove("fading");
        }, 300);
      }, PROMO_MS);
    }

    var recent = load(RECENT_KEY);
    var section = document.getElementById("recently-viewed");
    var list = document.getElementById("recent-list");
    if (!section || !list || recent.length === 0) return;
    recent.forEach(function (p) {
      var a = el("a", { href: "/product/" + encodeURIComponent(p.id) });
      a.appendChild(el("img", { src: p.image, alt: "", width: "40", height: "40" }));
      a.appendChild(el("span", {}, p.name));
      var li = el("li");
      li.appendChild(a);
      list.appendChild(li);
    });
    section.hidden = false;
  }

  // Product: remember the visit, step the quantity, add to the cart.
  function initProduct() {
    var product = document.getElementById("product");
    if (!product) return;
    var p = {
      id: product.dataset.id,
      name: product.dataset.name,
      price: parseInt(product.dataset.price, 10),
      image: product.dataset.image,
    };

    var recent = load(RECENT_KEY).filter(function (r) { return r.id !== p.id; });
    recent.unshift({ id: p.id, name: p.name, image: p.image });
    save(RECENT_KEY, recent.slice(0, 4));

    var qty = document.getElementById("quantity");
    function quantity() {
      var n = parseInt(qty.value, 10);
      return isNaN(n) ? 1 : Math.min(10, Math.max(1, n));
    }
    document.querySelectorAll(".qty-step").forEach(function (b) {
      b.addEventListener("click", function () {
        qty.value = String(Math.min(10, Math.max(1, quantity() + parseInt(b.dataset.step, 10))));
      });
    });

    var form = document.getElementById("buy-form");
    var status = document.getElementById("cart-status");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var n = quantity();
      qty.value = String(n);
      var cart = load(CART_KEY);
      var line = cart.find(function (item) { return item.id === p.id; });
      if (line) {
        line.qty = Math.min(99, line.qty + n);
      } else {
        cart.push({ id: p.id, name: p.name, price: p.price, image: p.image, qty: n });
      }
      save(CART_KEY, cart);
      updateCounter(true);
      status.textContent = "Added " + n + " × " + p.name + " to your cart. ";
      status.appendChild(el("a", { href: "/cart" }, "View cart"));
    });
  }

  // Cart: render the lines from localStorage; removing one re-renders.
  function initCart() {
    var tbody = document.getElementById("cart-items");
    if (!tbody) return;
    var table = document.getElementById("cart-table");
    var empty = document.getElementById("cart-empty");
    var total = document.getElementById("cart-total");

    function render() {
      var cart = load(CART_KEY);
      tbody.textContent = "";
      cart.forEach(function (item) {
        var tr = el("tr", { "data-id": item.id });
        var name = el("td");
        var wrap = el("div", { class: "cart-item" });
        wrap.appendChild(el("img", { src: item.image, alt: "", width: "52", height: "52" }));
        wrap.appendChild(el("a", { href: "/product/" + encodeURIComponent(item.id) }, item.name));
        name.appendChild(wrap);
        tr.appendChild(name);
        tr.appendChild(el("td", {}, String(item.qty)));
        tr.appendChild(el("td", { class: "num" }, money(item.qty * item.price)));
        var rm = el("td");
        var button = el("button", { type: "button", class: "remove" }, "Remove");
        button.addEventListener("click", function () {
          save(CART_KEY, load(CART_KEY).filter(function (i) { return i.id !== item.id; }));
          updateCounter(true);
          render();
        });
        rm.appendChild(button);
        tr.appendChild(rm);
        tbody.appendChild(tr);
      });
      total.textContent = money(cartTotal(cart));
      table.hidden = cart.length === 0;
      empty.hidden = cart.length !== 0;
    }
    render();
  }

  // Checkout: show an order summary beside the form.
  function initCheckout() {
    var list = document.getElementById("summary-items");
    if (!list) return;
    var cart = load(CART_KEY);
    if (cart.length > 0) {
      list.textContent = "";
      cart.forEach(function (item) {
        var li = el("li");
        li.appendChild(el("span", {}, item.qty + " × " + item.name));
        li.appendChild(el("span", {}, money(item.qty * item.price)));
        list.appendChild(li);
      });
    }
    document.getElementById("summary-total").textContent = money(cartTotal(cart));
  }

  // Thank-you page: the order is placed, so empty the cart.
  function initThanks() {
    if (document.querySelector("[data-clear-cart]")) save(CART_KEY, []);
  }

  function init() {
    initThanks();
    updateCounter(false);
    initHome();
    initProduct();
    initCart();
    initCheckout();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
